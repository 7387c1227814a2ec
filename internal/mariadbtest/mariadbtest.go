// Package mariadbtest starts a throwaway MariaDB server for tests: Debian's
// mariadbd on a temporary datadir and a free 127.0.0.1 port, with real users
// and grants, killed and deleted when the test is done.
//
// Integration tests never skip: when MariaDB is not installed, Start fails the
// test, RunMain fails the run, and StartMain returns an error that says to
// run `make test`.
package mariadbtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// startTimeout bounds how long a server may take to accept connections.
const startTimeout = 30 * time.Second

// errPortTaken means another process took the free port between our probe
// and mariadbd's bind; Start then tries again on another port.
var errPortTaken = errors.New("port already in use")

// Server is a MariaDB started for tests on a temporary datadir and a free
// 127.0.0.1 port. Root has no password and is reachable over TCP.
type Server struct {
	dir      string // holds data/, the socket, the pid file and error.log
	template string // the datadir data/ was copied from
	port     int

	cmd  *exec.Cmd
	done chan struct{} // closed once mariadbd has exited
	root *sql.DB

	bin  string   // the mariadbd program
	args []string // the options a Option added, after the defaults

	seq  atomic.Int64 // makes database and user names unique
	stop sync.Once
}

// Start starts a server for one test (or benchmark) and stops it in
// tb.Cleanup. It fails the test when MariaDB is missing or does not start;
// it never skips.
func Start(tb testing.TB, opts ...Option) *Server {
	tb.Helper()
	s, err := StartMain(opts...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Stop)
	return s
}

// RunMain is the TestMain of a package whose tests share one server: it
// starts the server, stores it in *srv, runs the tests, stops the server and
// returns the exit code for os.Exit:
//
//	var srv *mariadbtest.Server
//
//	func TestMain(m *testing.M) { os.Exit(mariadbtest.RunMain(m, &srv)) }
//
// Integration tests never skip: no MariaDB is a failure. When the server
// does not start, RunMain prints why and returns 1 without running a test.
func RunMain(m *testing.M, srv **Server, opts ...Option) int {
	s, err := StartMain(opts...)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer s.Stop()
	*srv = s
	return m.Run()
}

// StartMain starts a server from a TestMain, which has no testing.TB: the
// caller must call Stop (and should fail the run on an error, not skip).
// RunMain does all that for a TestMain that needs nothing else.
func StartMain(opts ...Option) (*Server, error) {
	bins, err := findBinaries()
	if err != nil {
		return nil, err
	}
	tmpl, err := templateDatadir(bins)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "mariadbtest-")
	if err != nil {
		return nil, fmt.Errorf("mariadbtest: %w", err)
	}
	s := &Server{dir: dir, template: tmpl, bin: bins.server}
	for _, o := range opts {
		o(s)
	}
	if err := copyDir(tmpl, s.datadir()); err != nil {
		s.Stop()
		return nil, fmt.Errorf("mariadbtest: copy template datadir %s: %w (delete it to rebuild it)", tmpl, err)
	}
	const attempts = 5
	for attempt := 1; ; attempt++ {
		err := s.launch(0)
		if err == nil {
			return s, nil
		}
		if !errors.Is(err, errPortTaken) || attempt == attempts {
			s.Stop()
			return nil, err
		}
	}
}

func (s *Server) datadir() string  { return filepath.Join(s.dir, "data") }
func (s *Server) errorLog() string { return filepath.Join(s.dir, "error.log") }

// launch starts mariadbd on port, or a free port when port is 0, and waits
// until root can connect.
func (s *Server) launch(port int) error {
	bin := s.bin
	if port == 0 {
		var err error
		if port, err = FreePort(); err != nil {
			return fmt.Errorf("mariadbtest: find a free port: %w", err)
		}
	}
	s.port = port
	_ = os.Remove(s.errorLog()) // so the log shows this attempt only

	args := append([]string{
		"--no-defaults", // must come first
		"--datadir=" + s.datadir(),
		"--socket=" + filepath.Join(s.dir, "s.sock"),
		"--port=" + strconv.Itoa(port),
		"--bind-address=127.0.0.1",
		"--skip-name-resolve",
		"--pid-file=" + filepath.Join(s.dir, "mariadbd.pid"),
		"--log-error=" + s.errorLog(),
		"--tmpdir=" + s.dir,
		// --no-defaults would otherwise leave latin1, unlike any real install.
		"--character-set-server=utf8mb4",
		"--collation-server=utf8mb4_unicode_ci",
	}, userOptions()...)
	args = append(args, s.serverOptions()...)

	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = sysProcAttr()
	started := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		// The parent-death signal fires when the thread that started the
		// child exits, not the process: keep this goroutine, blocked in
		// Wait, on that thread for as long as mariadbd runs.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		defer close(done)
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		_ = cmd.Wait()
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("mariadbtest: start %s: %w", bin, err)
	}
	s.cmd, s.done = cmd, done

	if err := s.waitReady(); err != nil {
		_ = cmd.Process.Kill()
		<-done
		s.cmd, s.done = nil, nil
		return err
	}
	return nil
}

// waitReady polls until root can connect, mariadbd exits, or startTimeout.
func (s *Server) waitReady() error {
	db, err := sql.Open("mysql", s.RootDSN("")+"&timeout=1s")
	if err != nil {
		return fmt.Errorf("mariadbtest: %w", err)
	}
	deadline := time.Now().Add(startTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err = db.PingContext(ctx)
		cancel()
		if err == nil {
			if s.root != nil {
				_ = s.root.Close() // the handle of the run before a Restart
			}
			s.root = db
			return nil
		}
		select {
		case <-s.done:
			_ = db.Close()
			log := s.logTail()
			if strings.Contains(log, "Address already in use") || strings.Contains(log, "Bind on TCP/IP port") {
				return fmt.Errorf("mariadbtest: port %d: %w", s.port, errPortTaken)
			}
			return fmt.Errorf("mariadbtest: mariadbd exited while starting on a copy of %s (delete that template to rebuild it); its error log (%s):\n%s",
				s.template, s.errorLog(), log)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = db.Close()
			return fmt.Errorf("mariadbtest: mariadbd did not accept connections on 127.0.0.1:%d within %s (last error: %v); its error log:\n%s",
				s.port, startTimeout, err, s.logTail())
		}
	}
}

// logTail returns the last lines of the server's error log for a failure
// message.
func (s *Server) logTail() string {
	b, err := os.ReadFile(s.errorLog())
	if err != nil {
		return fmt.Sprintf("(cannot read the error log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	return strings.Join(lines, "\n")
}

// FreePort is a TCP port free on the loopback interface now.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Stop kills the server and deletes its datadir. Nothing it holds is worth a
// clean shutdown. Stop is safe to call more than once.
func (s *Server) Stop() {
	s.stop.Do(func() {
		if s.root != nil {
			_ = s.root.Close()
		}
		if s.cmd != nil {
			_ = s.cmd.Process.Kill()
			<-s.done
		}
		_ = os.RemoveAll(s.dir)
	})
}

// RootDSN returns a go-sql-driver DSN for root over TCP on database db
// (empty for none), with parseTime=false and multiStatements=true.
func (s *Server) RootDSN(db string) string {
	return fmt.Sprintf("root@tcp(127.0.0.1:%d)/%s?parseTime=false&multiStatements=true", s.port, db)
}

// CreateDatabase creates a fresh, empty utf8mb4 database whose name is
// derived from name and unique on this server, and returns its root DSN
// (see RootDSN).
func (s *Server) CreateDatabase(tb testing.TB, name string) string {
	tb.Helper()
	db := fmt.Sprintf("%s_%d", identifier(name, 48), s.seq.Add(1))
	s.exec(tb, "CREATE DATABASE "+quote(db)+" CHARACTER SET utf8mb4")
	return s.RootDSN(db)
}

// CreateReader creates a user with a password and only the SELECT privilege
// on database db, and returns its DSN "user:pass@tcp(127.0.0.1:PORT)/db"
// (no parameters: append "?parseTime=true" and the like as needed). db is a
// database name, or a DSN as returned by CreateDatabase.
func (s *Server) CreateReader(tb testing.TB, db string) string {
	tb.Helper()
	if strings.Contains(db, "/") {
		cfg, err := mysql.ParseDSN(db)
		if err != nil {
			tb.Fatalf("mariadbtest: CreateReader: %v", err)
		}
		db = cfg.DBName
	}
	user := fmt.Sprintf("reader_%d", s.seq.Add(1))
	pass := make([]byte, 12)
	_, _ = rand.Read(pass)
	password := hex.EncodeToString(pass)
	s.exec(tb, fmt.Sprintf("CREATE USER '%s'@'%%' IDENTIFIED BY '%s'", user, password))
	s.exec(tb, fmt.Sprintf("GRANT SELECT ON %s.* TO '%s'@'%%'", quote(db), user))
	return fmt.Sprintf("%s:%s@tcp(127.0.0.1:%d)/%s", user, password, s.port, db)
}

func (s *Server) exec(tb testing.TB, query string) {
	tb.Helper()
	if _, err := s.root.Exec(query); err != nil {
		tb.Fatalf("mariadbtest: %s: %v", query, err)
	}
}

// identifier turns name into a lowercase [a-z0-9_] identifier of at most limit
// bytes.
func identifier(name string, limit int) string {
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		if b.Len() == limit {
			break
		}
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	if b.Len() == 0 {
		return "db"
	}
	return b.String()
}

// quote quotes a MariaDB identifier.
func quote(name string) string {
	return "`" + strings.ReplaceAll(name, "`", "``") + "`"
}
