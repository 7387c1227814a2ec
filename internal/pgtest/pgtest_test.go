package pgtest

import (
	"database/sql"
	"errors"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// srv is the server the tests of this file share, as a package's tests
// would: it also shows RunMain at work.
var srv *Server

func TestMain(m *testing.M) { os.Exit(RunMain(m, &srv)) }

func TestServerRunsAsUnprivilegedUser(t *testing.T) {
	want := os.Geteuid()
	if want == 0 {
		acct, err := serverAccount()
		if err != nil {
			t.Fatal(err)
		}
		if acct.uid == 0 {
			t.Fatalf("as root, the server's account is %s with uid 0, want an unprivileged user", acct.name)
		}
		want = acct.uid
	}
	if got := procUID(t, srv.cmd.Process.Pid); got != want {
		t.Errorf("postgres runs as uid %d, want %d (as root: the postgres user; otherwise: ourselves)", got, want)
	}
	for _, dir := range []string{srv.dir, srv.datadir(), srv.SocketDir()} {
		if got := fileUID(t, dir); got != want {
			t.Errorf("%s belongs to uid %d, want %d: the server must own its directories", dir, got, want)
		}
	}
}

func TestDSNForms(t *testing.T) {
	rootDSN := srv.CreateDatabase(t, t.Name())
	readerDSN := srv.CreateReader(t, rootDSN)
	db := databaseOf(t, rootDSN)
	reader, err := url.Parse(readerDSN)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, dsn, user string
	}{
		{"root URL", rootDSN, superuser},
		{"root keyword/value", KeywordDSN(t, rootDSN), superuser},
		{"root unix socket", srv.SocketDSN(db), superuser},
		{"reader URL", readerDSN, reader.User.Username()},
		{"reader keyword/value", KeywordDSN(t, readerDSN), reader.User.Username()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var user, database string
			if err := open(t, tc.dsn).QueryRow("SELECT current_user, current_database()").Scan(&user, &database); err != nil {
				t.Fatalf("connect with %s: %v", tc.name, err)
			}
			if user != tc.user || database != db {
				t.Errorf("connected as %s to %s, want %s to %s", user, database, tc.user, db)
			}
		})
	}

	// Passwords are checked over TCP, so a test of a wrong one means it.
	wrong := *reader
	wrong.User = url.UserPassword(reader.User.Username(), "wrong")
	err = open(t, wrong.String()).Ping()
	if code := pgCode(err); code != "28P01" { // invalid_password
		t.Errorf("connect with a wrong password: err = %v, want invalid_password (28P01)", err)
	}
}

func TestReader(t *testing.T) {
	rootDSN := srv.CreateDatabase(t, t.Name())
	// Exec takes several statements at once, for a test's schema.
	srv.Exec(t, rootDSN, `CREATE TABLE before (id int PRIMARY KEY, title text);
		INSERT INTO before VALUES (1, 'héllo ✓')`)
	reader := open(t, srv.CreateReader(t, rootDSN))
	// A table made after the reader is readable too, as with MariaDB's
	// GRANT SELECT ON db.*.
	srv.Exec(t, rootDSN, `CREATE TABLE after (id int PRIMARY KEY); INSERT INTO after VALUES (2)`)

	var title string
	if err := reader.QueryRow("SELECT title FROM before WHERE id = 1").Scan(&title); err != nil {
		t.Fatalf("reader cannot SELECT a table made before it: %v", err)
	}
	if title != "héllo ✓" {
		t.Errorf("title = %q, want the UTF-8 text back unchanged", title)
	}
	var id int
	if err := reader.QueryRow("SELECT id FROM after").Scan(&id); err != nil || id != 2 {
		t.Errorf("reader SELECT from a table made after it: id %d, err %v; want 2, nil", id, err)
	}
	for _, write := range []string{
		"INSERT INTO before VALUES (3, 'x')",
		"UPDATE before SET title = 'x'",
		"DELETE FROM after",
		"CREATE TABLE mine (id int)",
	} {
		_, err := reader.Exec(write)
		if code := pgCode(err); code != "42501" { // insufficient_privilege
			t.Errorf("reader %s: err = %v, want insufficient_privilege (42501)", write, err)
		}
	}

	// A role from CreateRole gets in but reads nothing until granted.
	bare := open(t, srv.CreateRole(t, rootDSN))
	_, err := bare.Exec("SELECT 1 FROM before")
	if code := pgCode(err); code != "42501" {
		t.Errorf("CreateRole's role SELECT: err = %v, want insufficient_privilege (42501)", err)
	}
}

func TestDatabasesIsolated(t *testing.T) {
	a := srv.CreateDatabase(t, "TestDatabasesIsolated/with space")
	b := srv.CreateDatabase(t, "TestDatabasesIsolated/with space")
	if !strings.HasPrefix(databaseOf(t, a), "testdatabasesisolated_with_space_") {
		t.Errorf("database name = %q, want it derived from the test name", databaseOf(t, a))
	}
	if a == b {
		t.Fatalf("CreateDatabase twice with one name returned %q both times, want distinct databases", a)
	}
	srv.Exec(t, a, "CREATE TABLE only_in_a (id int)")
	_, err := open(t, b).Exec("SELECT * FROM only_in_a")
	if code := pgCode(err); code != "42P01" { // undefined_table
		t.Errorf("SELECT in b from a's table: err = %v, want undefined_table (42P01)", err)
	}

	readerA, err := url.Parse(srv.CreateReader(t, a))
	if err != nil {
		t.Fatal(err)
	}
	readerA.Path = "/" + databaseOf(t, b)
	err = open(t, readerA.String()).Ping()
	if code := pgCode(err); code != "42501" {
		t.Errorf("a's reader connecting to b: err = %v, want insufficient_privilege (42501)", err)
	}
}

// open opens a pgx connection pool and closes it in tb.Cleanup.
func open(tb testing.TB, dsn string) *sql.DB {
	tb.Helper()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = db.Close() })
	return db
}

// pgCode returns the SQLSTATE of a server error, "" for any other.
func pgCode(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// procUID returns the real uid a process runs as.
func procUID(tb testing.TB, pid int) int {
	tb.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == "Uid:" {
			uid, err := strconv.Atoi(f[1])
			if err != nil {
				tb.Fatal(err)
			}
			return uid
		}
	}
	tb.Fatalf("no Uid line in /proc/%d/status", pid)
	return -1
}

func fileUID(tb testing.TB, path string) int {
	tb.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		tb.Fatal(err)
	}
	return int(fi.Sys().(*syscall.Stat_t).Uid)
}
