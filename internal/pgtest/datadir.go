package pgtest

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

// superuser is the superuser initdb creates, whatever the OS user.
const superuser = "postgres"

// initdbArgs make a cluster in the C locale with UTF-8 text, like the
// databases applications run on, and skip the fsyncs nothing here needs.
var initdbArgs = []string{
	"--username=" + superuser,
	"--auth=trust", // replaced by hbaConf
	"--encoding=UTF8",
	"--no-locale",
	"--no-sync",
	"--no-instructions",
}

// hbaConf lets the superuser in over the unix socket without a password
// (for the helpers' own setup) and asks every TCP client for its password,
// so a DSN without the right one fails as it would in production.
const hbaConf = `# written by pgtest
local all all trust
host  all all 127.0.0.1/32 scram-sha-256
`

// templateDatadir returns a data directory freshly made by initdb, built
// once per machine, user and PostgreSQL build and reused by every Server
// after it: initdb takes one to two seconds, a copy of its result tens of
// milliseconds. The template is never written to: each Server runs on its
// own copy.
func templateDatadir(bins binaries, acct account) (string, error) {
	key, err := templateKey(bins)
	if err != nil {
		return "", err
	}
	parent := filepath.Join(os.TempDir(), fmt.Sprintf("cometsync-pgtest-%d", os.Geteuid()))
	mode := os.FileMode(0o700)
	if acct.cred != nil {
		// The server's user must get through to its building directory:
		// the world may enter, not list.
		mode = 0o711
	}
	if err := os.MkdirAll(parent, mode); err != nil {
		return "", fmt.Errorf("pgtest: template datadir: %w", err)
	}
	if err := os.Chmod(parent, mode); err != nil {
		return "", fmt.Errorf("pgtest: template datadir: %w", err)
	}
	if err := acct.canReach(parent); err != nil {
		return "", err
	}
	dir := filepath.Join(parent, "datadir-"+key)
	// The template appears only by an atomic rename of a complete
	// cluster, so its existence means it is usable.
	if _, err := os.Stat(dir); err == nil {
		return dir, nil
	}

	build, err := os.MkdirTemp(parent, "building-")
	if err != nil {
		return "", fmt.Errorf("pgtest: template datadir: %w", err)
	}
	defer os.RemoveAll(build)
	if err := acct.own(build); err != nil {
		return "", err
	}
	data := filepath.Join(build, "data")
	cmd := exec.Command(bins.initdb, append([]string{"--pgdata=" + data}, initdbArgs...)...)
	cmd.Dir = build // the server's user may not be able to enter ours
	cmd.SysProcAttr = sysProcAttr(acct.cred)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("pgtest: %s as user %s failed: %w\n%s", bins.initdb, acct.name, err, out)
	}
	hba := filepath.Join(data, "pg_hba.conf")
	if err := os.WriteFile(hba, []byte(hbaConf), 0o600); err != nil {
		return "", fmt.Errorf("pgtest: template datadir: %w", err)
	}
	if err := acct.own(hba); err != nil {
		return "", err
	}
	if err := os.Rename(data, dir); err != nil {
		// Another test binary running in parallel published it first.
		if _, statErr := os.Stat(dir); statErr == nil {
			return dir, nil
		}
		return "", fmt.Errorf("pgtest: publish template datadir: %w", err)
	}
	return dir, nil
}

// templateKey names a template after everything that shapes its content:
// the programs (by path, size and modification time, so a package upgrade
// builds a new one), the initdb options and the pg_hba.conf.
func templateKey(bins binaries) (string, error) {
	h := sha256.New()
	for _, path := range []string{bins.initdb, bins.postgres} {
		fi, err := os.Stat(path)
		if err != nil {
			return "", fmt.Errorf("pgtest: %w", err)
		}
		fmt.Fprintf(h, "%s %d %d\n", path, fi.Size(), fi.ModTime().UnixNano())
	}
	fmt.Fprintln(h, strings.Join(initdbArgs, " "))
	fmt.Fprint(h, hbaConf)
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// copyDir copies the regular files and directories under src to dst and
// gives each to the account; PostgreSQL wants its data directory private
// (0700) and owned by the user it runs as.
func copyDir(src, dst string, acct account) error {
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
			if err := os.MkdirAll(target, 0o700); err != nil {
				return err
			}
		case d.Type().IsRegular():
			if err := copyFile(path, target); err != nil {
				return err
			}
		default:
			return nil
		}
		return acct.own(target)
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
