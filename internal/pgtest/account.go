package pgtest

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

// serverUser is the account initdb and postgres run as when the tests run
// as root: the system user Debian's postgresql package creates.
const serverUser = "postgres"

// account is the user the server programs run as and own their files as.
type account struct {
	name string
	uid  int
	gid  int
	// cred is nil when that user is the current one.
	cred *syscall.Credential
}

// serverAccount returns the current user, or the postgres system user when
// the tests run as root: PostgreSQL refuses to run as root.
func serverAccount() (account, error) {
	uid, gid := os.Geteuid(), os.Getegid()
	if uid != 0 {
		name := strconv.Itoa(uid)
		if u, err := user.Current(); err == nil {
			name = u.Username
		}
		return account{name: name, uid: uid, gid: gid}, nil
	}
	u, err := user.Lookup(serverUser)
	if err != nil {
		return account{}, fmt.Errorf("pgtest: PostgreSQL refuses to run as root and there is no %q user to run it as (%v): "+
			"install Debian's postgresql package, which creates it (make test does)", serverUser, err)
	}
	a := account{name: u.Username}
	if a.uid, err = strconv.Atoi(u.Uid); err != nil {
		return account{}, fmt.Errorf("pgtest: user %s has uid %q: %w", u.Username, u.Uid, err)
	}
	if a.gid, err = strconv.Atoi(u.Gid); err != nil {
		return account{}, fmt.Errorf("pgtest: user %s has gid %q: %w", u.Username, u.Gid, err)
	}
	a.cred = &syscall.Credential{Uid: uint32(a.uid), Gid: uint32(a.gid)}
	return a, nil
}

// own makes path belong to the account, so the server can write there.
func (a account) own(path string) error {
	if a.cred == nil {
		return nil
	}
	if err := os.Lchown(path, a.uid, a.gid); err != nil {
		return fmt.Errorf("pgtest: give %s to user %s: %w", path, a.name, err)
	}
	return nil
}

// canReach reports an error unless dir and every directory above it let
// the account through: a TMPDIR under /root would keep the postgres user out
// with nothing clearer than initdb's "permission denied".
func (a account) canReach(dir string) error {
	if a.cred == nil {
		return nil
	}
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("pgtest: %w", err)
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		perm := fi.Mode().Perm()
		reachable := perm&0o001 != 0 ||
			ok && int(st.Uid) == a.uid && perm&0o100 != 0 ||
			ok && int(st.Gid) == a.gid && perm&0o010 != 0
		if !reachable {
			return fmt.Errorf("pgtest: the server runs as user %s, which cannot enter %s (mode %s): "+
				"set TMPDIR to a directory it can reach, such as /tmp", a.name, d, fi.Mode().Perm())
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}
