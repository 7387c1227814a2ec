package deploytest

import (
	"os"
	"path/filepath"
	"testing"
)

// moduleRoot returns the directory holding go.mod, above the test's working
// directory: the files under test are found from there.
func moduleRoot(tb testing.TB) string {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Fatal("no go.mod in the working directory or above it")
		}
		dir = parent
	}
}

// readRepoFile returns the file at rel, a slash-separated path from the
// module root.
func readRepoFile(tb testing.TB, rel string) []byte {
	tb.Helper()
	data, err := os.ReadFile(filepath.Join(moduleRoot(tb), filepath.FromSlash(rel)))
	if err != nil {
		tb.Fatal(err)
	}
	return data
}
