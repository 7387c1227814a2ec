package pgtest

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cometsync/cometsync/internal/mariadbtest"
)

func TestStopRemovesEverything(t *testing.T) {
	start := time.Now()
	s := Start(t)
	t.Logf("started in %s", time.Since(start))
	dsn := s.CreateDatabase(t, t.Name())
	db := open(t, dsn)
	if err := db.Ping(); err != nil {
		t.Fatal(err)
	}
	pid := s.cmd.Process.Pid
	children := childPIDs(pid)
	if len(children) == 0 {
		t.Fatalf("found no processes under postmaster %d", pid)
	}
	shm := shmID(t, s)

	s.Stop()
	if _, err := os.Stat(s.dir); !os.IsNotExist(err) {
		t.Errorf("server directory %s still exists after Stop (stat: %v)", s.dir, err)
	}
	for _, p := range append(children, pid) {
		if alive(p) {
			t.Errorf("process %d of the server still runs after Stop", p)
		}
	}
	if shmExists(t, shm) {
		t.Errorf("shared memory segment %s still exists after Stop", shm)
	}
	if conn, err := net.DialTimeout("tcp", s.Addr(), time.Second); err == nil {
		conn.Close()
		t.Errorf("%s still accepts connections after Stop", s.Addr())
	}
	s.Stop() // a second Stop (the Cleanup) is harmless
}

func TestKillFailsQueries(t *testing.T) {
	s := Start(t)
	dsn := s.CreateDatabase(t, t.Name())
	db := open(t, dsn)
	ctx := context.Background()
	// A connection in the middle of a transaction, as a pass reading
	// pages is.
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN ISOLATION LEVEL REPEATABLE READ"); err != nil {
		t.Fatal(err)
	}
	shm := shmID(t, s)

	s.Kill()
	var one int
	if err := conn.QueryRowContext(ctx, "SELECT 1").Scan(&one); err == nil {
		t.Error("a query on a connection open before Kill succeeded, want an error")
	}
	if err := open(t, dsn).PingContext(ctx); err == nil {
		t.Error("a new connection after Kill succeeded, want an error")
	}
	if shmExists(t, shm) {
		t.Errorf("shared memory segment %s survives Kill", shm)
	}
	s.Stop()
	if _, err := os.Stat(s.dir); !os.IsNotExist(err) {
		t.Errorf("server directory %s still exists after Kill and Stop (stat: %v)", s.dir, err)
	}
}

// The database-dies tests of the sources put mariadbtest's TCP proxy in
// front of the server's loopback port.
func TestThroughProxy(t *testing.T) {
	dsn := srv.CreateDatabase(t, t.Name())
	p := mariadbtest.NewProxy(t, srv.Addr())
	viaProxy := strings.Replace(dsn, srv.Addr(), p.Addr(), 1)
	db := open(t, viaProxy)
	db.SetMaxOpenConns(1)
	if err := db.Ping(); err != nil {
		t.Fatalf("connect through the proxy: %v", err)
	}
	p.Break()
	if _, err := db.Exec("SELECT 1"); err == nil {
		t.Error("a query after the proxy broke succeeded, want an error")
	}
	p.Restore(t)
	if err := db.Ping(); err != nil {
		t.Errorf("connect through the restored proxy: %v", err)
	}
}

// shmID returns the id of the server's System V shared memory segment,
// from line 7 of postmaster.pid.
func shmID(tb testing.TB, s *Server) string {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(s.datadir(), "postmaster.pid"))
	if err != nil {
		tb.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) < 7 || len(strings.Fields(lines[6])) != 2 {
		tb.Fatalf("postmaster.pid has no shared memory line:\n%s", b)
	}
	return strings.Fields(lines[6])[1]
}

// shmExists reports whether a System V shared memory segment id exists.
func shmExists(tb testing.TB, id string) bool {
	tb.Helper()
	b, err := os.ReadFile("/proc/sysvipc/shm")
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n")[1:] {
		if f := strings.Fields(line); len(f) > 1 && f[1] == id {
			return true
		}
	}
	return false
}
