package mariadbtest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// binaries are the paths of the MariaDB programs a Server runs.
type binaries struct {
	server  string // mariadbd
	install string // mariadb-install-db
}

// Available reports whether the MariaDB server programs (mariadbd and
// mariadb-install-db) are on this machine. The error says what is missing
// and how to install it; integration tests fail on it, they never skip.
func Available() error {
	_, err := findBinaries()
	return err
}

func findBinaries() (binaries, error) {
	var (
		bins    binaries
		missing []string
	)
	for _, b := range []struct {
		name string
		dst  *string
	}{
		{"mariadbd", &bins.server},
		{"mariadb-install-db", &bins.install},
	} {
		path, err := lookPath(b.name)
		if err != nil {
			missing = append(missing, b.name)
			continue
		}
		*b.dst = path
	}
	if len(missing) == 0 {
		return bins, nil
	}
	msg := fmt.Sprintf("MariaDB server programs not found (%s, looked in $PATH, /usr/sbin and /usr/bin): "+
		"run `make test`, which installs mariadb-server, or install it yourself (`apt-get install mariadb-server`); "+
		"integration tests need a real MariaDB and do not skip",
		strings.Join(missing, ", "))
	if os.Getenv("CI") != "" {
		msg = "CI is set and " + msg + "; the CI image must install mariadb-server"
	}
	return binaries{}, errors.New("mariadbtest: " + msg)
}

// lookPath finds name on $PATH, then in /usr/sbin and /usr/bin, which are
// often missing from a non-root $PATH although Debian installs mariadbd there.
func lookPath(name string) (string, error) {
	if path, err := exec.LookPath(name); err == nil {
		return path, nil
	}
	for _, dir := range []string{"/usr/sbin", "/usr/bin"} {
		path := filepath.Join(dir, name)
		if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return path, nil
		}
	}
	return "", fmt.Errorf("%s not found", name)
}
