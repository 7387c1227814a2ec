package pgtest

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// versionsDir is where Debian's postgresql-<version> packages put their
// programs, one <version>/bin per installed major version.
const versionsDir = "/usr/lib/postgresql"

// binaries are the paths of the PostgreSQL programs a Server runs.
type binaries struct {
	initdb   string
	postgres string
}

// Available reports whether the PostgreSQL server programs (initdb and
// postgres) are on this machine. The error says what is missing and how to
// install it; integration tests fail on it, they never skip.
func Available() error {
	_, err := findBinaries()
	return err
}

// findBinaries looks in the directory `pg_config --bindir` names, then in the
// newest /usr/lib/postgresql/<version>/bin that has both programs: Debian
// keeps them off $PATH, and a pg_config from libpq-dev may name a version
// whose server is not installed.
func findBinaries() (binaries, error) { return findBinariesIn(versionsDir) }

// findBinariesIn is findBinaries with root in place of /usr/lib/postgresql.
func findBinariesIn(root string) (binaries, error) {
	var dirs []string
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		dirs = append(dirs, strings.TrimSpace(string(out)))
	}
	dirs = append(dirs, versionDirs(root)...)
	for _, dir := range dirs {
		bins := binaries{initdb: filepath.Join(dir, "initdb"), postgres: filepath.Join(dir, "postgres")}
		if isExecutable(bins.initdb) && isExecutable(bins.postgres) {
			return bins, nil
		}
	}
	msg := "PostgreSQL server programs not found (initdb and postgres, looked in `pg_config --bindir` and " +
		root + "/<version>/bin): install Debian's postgresql package (make test does: run `make test`, " +
		"or `apt-get install postgresql`); integration tests need a real PostgreSQL and do not skip"
	if os.Getenv("CI") != "" {
		msg = "CI is set and " + msg + "; the CI image must install postgresql"
	}
	return binaries{}, errors.New("pgtest: " + msg)
}

// versionDirs returns the <root>/<version>/bin directories, newest major
// version first.
func versionDirs(root string) []string {
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil
	}
	type version struct {
		num float64
		dir string
	}
	var versions []version
	for _, e := range entries {
		// Debian names them by major version: "15", "16", or "9.6" of old.
		num, err := strconv.ParseFloat(e.Name(), 64)
		if err != nil || !e.IsDir() {
			continue
		}
		versions = append(versions, version{num, filepath.Join(root, e.Name(), "bin")})
	}
	sort.Slice(versions, func(i, j int) bool { return versions[i].num > versions[j].num })
	dirs := make([]string, len(versions))
	for i, v := range versions {
		dirs[i] = v.dir
	}
	return dirs
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}
