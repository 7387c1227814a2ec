// Package pgtest starts a throwaway PostgreSQL server for tests: Debian's
// postgres on a temporary data directory, a unix socket in a temporary
// directory and a free 127.0.0.1 port, with real roles and grants, stopped
// and deleted when the test is done.
//
// PostgreSQL refuses to run as root, and tests and CI run as root: then the
// server runs as the postgres system user (Debian's postgresql package
// creates it), and its files belong to that user. As any other user it runs
// as that user.
//
// Integration tests never skip: when PostgreSQL is not installed, Start
// fails the test, RunMain fails the run, and StartMain returns an error that
// says to install Debian's postgresql package (`make test` does).
package pgtest

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
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
)

// startTimeout bounds how long a server may take to accept connections.
const startTimeout = 30 * time.Second

// stopTimeout bounds how long an immediate shutdown may take before Stop
// kills the server outright.
const stopTimeout = 10 * time.Second

// errPortTaken means another process took the free port between our probe
// and the server's bind; StartMain then tries again on another port.
var errPortTaken = errors.New("port already in use")

// serverSettings make a throwaway server start in a fraction of a second
// and write little: nothing here needs durability.
var serverSettings = []string{
	"fsync=off",
	"synchronous_commit=off",
	"full_page_writes=off",
	"shared_buffers=32MB",
	// In the data directory rather than /dev/shm: deleted with it, even
	// after a kill, and not bound by a container's small /dev/shm.
	"dynamic_shared_memory_type=mmap",
	// The server's own zone, not the machine's, for timestamptz output.
	"TimeZone=UTC",
	"log_timezone=UTC",
}

// Server is a PostgreSQL started for tests on a temporary data directory,
// a unix socket and a free 127.0.0.1 port. Its superuser is postgres, with
// a random password over TCP and none over the socket.
type Server struct {
	dir      string // holds data/, sock/ and server.log
	template string // the data directory data/ was copied from
	acct     account
	port     int
	password string // the superuser's

	cmd  *exec.Cmd
	done chan struct{} // closed once postgres has exited

	mu    sync.Mutex
	roots map[string]*sql.DB // superuser connections by database

	seq  atomic.Int64 // makes database and role names unique
	stop sync.Once
}

// Start starts a server for one test (or benchmark) and stops it in
// tb.Cleanup. It fails the test when PostgreSQL is missing or does not
// start; it never skips.
func Start(tb testing.TB) *Server {
	tb.Helper()
	s, err := StartMain()
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
//	var srv *pgtest.Server
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.RunMain(m, &srv)) }
//
// Integration tests never skip: no PostgreSQL is a failure. When the server
// does not start, RunMain prints why and returns 1 without running a test.
func RunMain(m *testing.M, srv **Server) int {
	s, err := StartMain()
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
func StartMain() (*Server, error) {
	bins, err := findBinaries()
	if err != nil {
		return nil, err
	}
	acct, err := serverAccount()
	if err != nil {
		return nil, err
	}
	tmpl, err := templateDatadir(bins, acct)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	s := &Server{dir: dir, template: tmpl, acct: acct, roots: map[string]*sql.DB{}}
	if err := s.prepare(); err != nil {
		s.Stop()
		return nil, err
	}
	const attempts = 5
	for attempt := 1; ; attempt++ {
		err := s.launch(bins.postgres)
		if err == nil {
			break
		}
		if !errors.Is(err, errPortTaken) || attempt == attempts {
			s.Stop()
			return nil, err
		}
	}
	// Set over the socket, where the superuser needs none, so that the
	// template holds no password and each server has its own.
	if _, err := s.root("").Exec("ALTER ROLE " + superuser + " PASSWORD '" + s.password + "'"); err != nil {
		s.Stop()
		return nil, fmt.Errorf("pgtest: set the superuser's password: %w", err)
	}
	return s, nil
}

// prepare gives the server's user its directory, a copy of the template
// data directory and a socket directory, and picks the superuser password.
func (s *Server) prepare() error {
	if err := s.acct.own(s.dir); err != nil {
		return err
	}
	if err := s.acct.canReach(s.dir); err != nil {
		return err
	}
	if err := copyDir(s.template, s.datadir(), s.acct); err != nil {
		return fmt.Errorf("pgtest: copy template data directory %s: %w (delete it to rebuild it)", s.template, err)
	}
	if err := os.Mkdir(s.SocketDir(), 0o700); err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	if err := s.acct.own(s.SocketDir()); err != nil {
		return err
	}
	s.password = randomHex()
	return nil
}

func (s *Server) datadir() string { return filepath.Join(s.dir, "data") }
func (s *Server) logPath() string { return filepath.Join(s.dir, "server.log") }

// SocketDir is the directory of the server's unix socket: the host of a
// DSN that connects over the socket.
func (s *Server) SocketDir() string { return filepath.Join(s.dir, "sock") }

// Port is the server's TCP port on 127.0.0.1 (and its socket's number).
func (s *Server) Port() int { return s.port }

// Addr is the server's host:port, e.g. the target of a mariadbtest.Proxy.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// launch starts postgres on a free port and waits until the superuser can
// connect over the socket.
func (s *Server) launch(bin string) error {
	port, err := freePort()
	if err != nil {
		return fmt.Errorf("pgtest: find a free port: %w", err)
	}
	s.port = port
	// Truncated, so that the log shows this attempt only.
	logFile, err := os.Create(s.logPath())
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	defer logFile.Close() // postgres has its own descriptor

	args := []string{
		"-D", s.datadir(),
		"-p", strconv.Itoa(port),
		"-k", s.SocketDir(),
		"-h", "127.0.0.1",
	}
	for _, setting := range serverSettings {
		args = append(args, "-c", setting)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = s.dir // the server's user may not be able to enter ours
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = sysProcAttr(s.acct.cred)
	started := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		// The parent-death signal fires when the thread that started the
		// child exits, not the process: keep this goroutine, blocked in
		// Wait, on that thread for as long as postgres runs.
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
		return fmt.Errorf("pgtest: start %s as user %s: %w", bin, s.acct.name, err)
	}
	s.cmd, s.done = cmd, done

	if err := s.waitReady(); err != nil {
		s.Kill()
		s.cmd, s.done = nil, nil
		return err
	}
	return nil
}

// waitReady polls until the superuser can connect, postgres exits, or
// startTimeout.
func (s *Server) waitReady() error {
	db := s.root("")
	deadline := time.Now().Add(startTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := db.PingContext(ctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-s.done:
			log := s.logTail()
			if strings.Contains(log, "Address already in use") {
				return fmt.Errorf("pgtest: port %d: %w", s.port, errPortTaken)
			}
			return fmt.Errorf("pgtest: postgres exited while starting on a copy of %s (delete that template to rebuild it); its log (%s):\n%s",
				s.template, s.logPath(), log)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pgtest: postgres did not accept connections on %s within %s (last error: %v); its log:\n%s",
				s.SocketDir(), startTimeout, err, s.logTail())
		}
	}
}

// logTail returns the last lines of the server's log for a failure message.
func (s *Server) logTail() string {
	b, err := os.ReadFile(s.logPath())
	if err != nil {
		return fmt.Sprintf("(cannot read the log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	return strings.Join(lines, "\n")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Kill kills the server and all its processes at once, as a crash would:
// clients see their connections drop without a word, and new ones are
// refused. Stop still deletes its files.
func (s *Server) Kill() {
	if s.cmd == nil {
		return
	}
	select {
	case <-s.done:
		return
	default:
	}
	killTree(s.cmd.Process.Pid)
	<-s.done
	s.removeSharedMemory()
}

// removeSharedMemory deletes the small System V segment a killed
// postmaster leaves behind (a clean exit deletes it itself); a new server
// never reuses it, so each kill would otherwise leak one until reboot.
func (s *Server) removeSharedMemory() {
	b, err := os.ReadFile(filepath.Join(s.datadir(), "postmaster.pid"))
	if err != nil {
		return
	}
	// Line 7 holds the segment's key and id.
	lines := strings.Split(string(b), "\n")
	if len(lines) < 7 {
		return
	}
	if f := strings.Fields(lines[6]); len(f) == 2 {
		_ = exec.Command("ipcrm", "-m", f[1]).Run()
	}
}

// Stop shuts the server down (immediately: nothing it holds is worth a
// checkpoint) and deletes its files. Stop is safe to call more than once,
// and after Kill.
func (s *Server) Stop() {
	s.stop.Do(func() {
		s.mu.Lock()
		// Left in the map: a late Exec gets "database is closed".
		for _, db := range s.roots {
			_ = db.Close()
		}
		s.mu.Unlock()
		if s.cmd != nil {
			// SIGQUIT is PostgreSQL's immediate shutdown; unlike a kill it
			// cleans up its shared memory.
			_ = s.cmd.Process.Signal(syscall.SIGQUIT)
			select {
			case <-s.done:
			case <-time.After(stopTimeout):
				s.Kill()
			}
		}
		_ = os.RemoveAll(s.dir)
	})
}

func randomHex() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
