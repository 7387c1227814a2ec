package pgtest

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestCanReachNamesTheBlockingDirectory(t *testing.T) {
	// Another user than the one owning t.TempDir, as the postgres user is
	// when the tests run as root with TMPDIR under /root.
	other := account{name: "someone", uid: 54321, gid: 54321, cred: &syscall.Credential{Uid: 54321, Gid: 54321}}
	private := filepath.Join(t.TempDir(), "private")
	if err := os.MkdirAll(filepath.Join(private, "sub"), 0o711); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(private, 0o700); err != nil {
		t.Fatal(err)
	}
	err := other.canReach(filepath.Join(private, "sub"))
	if err == nil {
		t.Fatalf("canReach under a 0700 directory of another user = nil, want an error")
	}
	for _, want := range []string{"someone", private, "set TMPDIR"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error = %q, want it to name %q", err, want)
		}
	}

	// Once the test's directories let others through too (the temp dir
	// above them does), it passes.
	for d := private; d != filepath.Dir(d) && strings.HasPrefix(d, filepath.Dir(t.TempDir())); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	if err := other.canReach(filepath.Join(private, "sub")); err != nil {
		t.Errorf("canReach with every directory of the test's enterable = %v", err)
	}
}
