package mariadbtest

import (
	"database/sql"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

func TestServer(t *testing.T) {
	start := time.Now()
	srv := Start(t)
	t.Logf("started in %s", time.Since(start))

	rootDSN := srv.CreateDatabase(t, "TestServer/with space")
	cfg, err := mysql.ParseDSN(rootDSN)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(cfg.DBName, "testserver_with_space_") {
		t.Errorf("database name = %q, want it derived from the test name", cfg.DBName)
	}
	if again := srv.CreateDatabase(t, "TestServer/with space"); again == rootDSN {
		t.Errorf("CreateDatabase twice with one name returned %q both times, want distinct databases", again)
	}

	root := open(t, rootDSN)
	// multiStatements=true lets a test set up its schema in one call.
	if _, err := root.Exec(`CREATE TABLE t (id INT PRIMARY KEY, title VARCHAR(20));
		INSERT INTO t VALUES (1, 'héllo ✓')`); err != nil {
		t.Fatal(err)
	}

	reader := open(t, srv.CreateReader(t, rootDSN))
	var title string
	if err := reader.QueryRow("SELECT title FROM t WHERE id = 1").Scan(&title); err != nil {
		t.Fatalf("reader cannot SELECT: %v", err)
	}
	if title != "héllo ✓" {
		t.Errorf("title = %q, want the utf8mb4 text back unchanged", title)
	}
	_, err = reader.Exec("INSERT INTO t VALUES (2, 'x')")
	var myErr *mysql.MySQLError
	if !errors.As(err, &myErr) || myErr.Number != 1142 { // ER_TABLEACCESS_DENIED_ERROR
		t.Errorf("reader INSERT: err = %v, want access denied (1142)", err)
	}

	srv.Stop()
	if _, err := os.Stat(srv.dir); !os.IsNotExist(err) {
		t.Errorf("datadir %s still exists after Stop (stat: %v)", srv.dir, err)
	}
	gone := open(t, srv.RootDSN("")+"&timeout=1s")
	if err := gone.Ping(); err == nil {
		t.Error("server still answers after Stop")
	}
	srv.Stop() // a second Stop (the Cleanup) is harmless
}

func TestAvailable(t *testing.T) {
	if err := Available(); err != nil {
		t.Fatalf("Available() = %v on a machine that has mariadb-server", err)
	}

	t.Setenv("PATH", t.TempDir())
	// Debian's /usr/sbin fallback still finds the programs without $PATH.
	if err := Available(); err != nil {
		t.Errorf("Available() with an empty $PATH = %v, want the /usr/sbin and /usr/bin fallback", err)
	}
}

func TestIdentifier(t *testing.T) {
	for _, tc := range []struct {
		in    string
		limit int
		want  string
	}{
		{"TestReadPage/parseTime=true", 48, "testreadpage_parsetime_true"},
		{"", 48, "db"},
		{strings.Repeat("a", 100), 10, strings.Repeat("a", 10)},
	} {
		if got := identifier(tc.in, tc.limit); got != tc.want {
			t.Errorf("identifier(%q, %d) = %q, want %q", tc.in, tc.limit, got, tc.want)
		}
	}
}

func open(tb testing.TB, dsn string) *sql.DB {
	tb.Helper()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = db.Close() })
	return db
}
