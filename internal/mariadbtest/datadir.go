package mariadbtest

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// innodbOptions make a throwaway server start in a fraction of a second and
// write little: nothing here needs durability. mariadb-install-db passes them
// on to its bootstrap server too, so the datadir it creates (the redo log size
// in particular) matches the server that later runs on it.
var innodbOptions = []string{
	"--innodb-buffer-pool-size=64M",
	"--innodb-log-file-size=16M",
	"--skip-innodb-doublewrite",
	"--innodb-flush-log-at-trx-commit=0",
	// Native AIO (io_uring/libaio) is a per-machine resource that many
	// parallel test servers or a container's limits can exhaust.
	"--innodb-use-native-aio=0",
	"--skip-performance-schema",
	"--skip-log-bin",
}

// userOptions returns --user=root when running as root: mariadbd refuses to
// run as root unless told to, and mariadb-install-db would chown to mysql.
func userOptions() []string {
	if os.Geteuid() == 0 {
		return []string{"--user=root"}
	}
	return nil
}

// templateDatadir returns a datadir freshly initialised by
// mariadb-install-db, built once per machine, user and MariaDB build, and
// reused by every Server after it. Installing takes one to two seconds (most
// of it loading the help tables); copying the result takes milliseconds.
// The template is never written to: each Server runs on its own copy.
func templateDatadir(bins binaries) (string, error) {
	installArgs := append([]string{
		"--no-defaults",
		"--auth-root-authentication-method=normal",
		"--skip-test-db",
		"--skip-name-resolve",
	}, userOptions()...)
	installArgs = append(installArgs, innodbOptions...)

	key, err := templateKey(bins, installArgs)
	if err != nil {
		return "", err
	}
	parent := filepath.Join(os.TempDir(), fmt.Sprintf("cometsync-mariadbtest-%d", os.Geteuid()))
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return "", fmt.Errorf("mariadbtest: template datadir: %w", err)
	}
	dir := filepath.Join(parent, "datadir-"+key)
	// The template appears only by an atomic rename of a complete install,
	// so its existence means it is usable.
	if _, err := os.Stat(dir); err == nil {
		return dir, nil
	}

	build, err := os.MkdirTemp(parent, "building-")
	if err != nil {
		return "", fmt.Errorf("mariadbtest: template datadir: %w", err)
	}
	defer os.RemoveAll(build)
	data := filepath.Join(build, "data")
	out, err := exec.Command(bins.install, append(installArgs, "--datadir="+data)...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("mariadbtest: %s failed: %w\n%s", bins.install, err, out)
	}
	if err := os.Rename(data, dir); err != nil {
		// Another test binary running in parallel published it first.
		if _, statErr := os.Stat(dir); statErr == nil {
			return dir, nil
		}
		return "", fmt.Errorf("mariadbtest: publish template datadir: %w", err)
	}
	return dir, nil
}

// templateKey names a template after everything that shapes its content:
// the programs (by path, size and modification time, so a package upgrade
// builds a new one) and the install options.
func templateKey(bins binaries, installArgs []string) (string, error) {
	h := sha256.New()
	for _, path := range []string{bins.server, bins.install} {
		fi, err := os.Stat(path)
		if err != nil {
			return "", fmt.Errorf("mariadbtest: %w", err)
		}
		fmt.Fprintf(h, "%s %d %d\n", path, fi.Size(), fi.ModTime().UnixNano())
	}
	fmt.Fprintln(h, strings.Join(installArgs, " "))
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// copyDir copies the regular files and directories under src to dst.
func copyDir(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o700)
		case d.Type().IsRegular():
			return copyFile(path, target)
		default:
			return nil
		}
	})
}

func copyFile(src, dst string) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, out.Close()) }()
	// On Linux this is copy_file_range: no bytes pass through user space.
	_, err = io.Copy(out, in)
	return err
}
