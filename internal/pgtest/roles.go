package pgtest

import (
	"database/sql"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// maintenanceDB is the database every cluster has, for a DSN on none.
const maintenanceDB = "postgres"

// RootDSN returns a pgx DSN in URL form for the superuser, with its
// password, over TCP on database db (empty: the maintenance database
// postgres), without TLS:
// postgres://postgres:PASSWORD@127.0.0.1:PORT/db?sslmode=disable.
func (s *Server) RootDSN(db string) string {
	return s.tcpDSN(superuser, s.password, db)
}

// SocketDSN returns a pgx DSN in keyword/value form for the superuser over
// the unix socket on database db (empty: postgres), where it needs no
// password: host=SOCKETDIR port=PORT user=postgres dbname=db.
func (s *Server) SocketDSN(db string) string {
	if db == "" {
		db = maintenanceDB
	}
	return fmt.Sprintf("host=%s port=%d user=%s dbname=%s sslmode=disable", s.SocketDir(), s.port, superuser, db)
}

func (s *Server) tcpDSN(role, password, db string) string {
	if db == "" {
		db = maintenanceDB
	}
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(role, password),
		Host:     s.Addr(),
		Path:     "/" + db,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// KeywordDSN returns a URL DSN as returned by RootDSN, CreateDatabase,
// CreateRole or CreateReader in pgx's other form, keyword/value:
// host=127.0.0.1 port=PORT user=ROLE password=PASSWORD dbname=DB sslmode=disable.
func KeywordDSN(tb testing.TB, dsn string) string {
	tb.Helper()
	u, err := url.Parse(dsn)
	if err != nil || u.Scheme != "postgres" {
		tb.Fatalf("pgtest: KeywordDSN: %q is not a postgres:// URL (%v)", dsn, err)
	}
	pw, _ := u.User.Password()
	kv := []string{
		"host=" + u.Hostname(),
		"port=" + u.Port(),
		"user=" + quoteValue(u.User.Username()),
		"password=" + quoteValue(pw),
		"dbname=" + quoteValue(strings.TrimPrefix(u.Path, "/")),
	}
	query := u.Query()
	for _, k := range slices.Sorted(maps.Keys(query)) {
		for _, v := range query[k] {
			kv = append(kv, k+"="+quoteValue(v))
		}
	}
	return strings.Join(kv, " ")
}

// quoteValue quotes a keyword/value DSN value when it needs it.
func quoteValue(v string) string {
	if v != "" && !strings.ContainsAny(v, ` '\`) {
		return v
	}
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

// CreateDatabase creates a fresh, empty UTF-8 database whose name is derived
// from name and unique on this server, and returns its RootDSN. Only the
// superuser and the roles made for it by CreateRole or CreateReader may
// connect to it.
func (s *Server) CreateDatabase(tb testing.TB, name string) string {
	tb.Helper()
	db := fmt.Sprintf("%s_%d", identifier(name, 48), s.seq.Add(1))
	s.Exec(tb, "", "CREATE DATABASE "+quote(db)+" ENCODING 'UTF8' TEMPLATE template0")
	s.Exec(tb, "", "REVOKE CONNECT ON DATABASE "+quote(db)+" FROM PUBLIC")
	return s.RootDSN(db)
}

// CreateRole creates a login role with a password that may connect to
// database db and use its public schema, and has no privilege on any table:
// grant it what a test needs with Exec. It returns the role's DSN in URL form
// (see RootDSN). db is a database name, or a DSN as returned by
// CreateDatabase.
func (s *Server) CreateRole(tb testing.TB, db string) string {
	tb.Helper()
	dsn, _ := s.createRole(tb, "role", db)
	return dsn
}

// CreateReader creates a role as CreateRole does, allowed to SELECT from
// every table and view in db's public schema, the ones there now and the
// ones the superuser creates later, and nothing else: the least a source
// needs. It returns the role's DSN in URL form.
func (s *Server) CreateReader(tb testing.TB, db string) string {
	tb.Helper()
	dsn, role := s.createRole(tb, "reader", db)
	db = databaseOf(tb, db)
	s.Exec(tb, db, fmt.Sprintf(`GRANT SELECT ON ALL TABLES IN SCHEMA public TO %[1]s;
		ALTER DEFAULT PRIVILEGES FOR ROLE %[2]s IN SCHEMA public GRANT SELECT ON TABLES TO %[1]s`,
		quote(role), superuser))
	return dsn
}

func (s *Server) createRole(tb testing.TB, prefix, db string) (dsn, role string) {
	tb.Helper()
	db = databaseOf(tb, db)
	role = fmt.Sprintf("%s_%d", prefix, s.seq.Add(1))
	password := randomHex()
	s.Exec(tb, "", fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", quote(role), password))
	s.Exec(tb, "", fmt.Sprintf("GRANT CONNECT ON DATABASE %s TO %s", quote(db), quote(role)))
	s.Exec(tb, db, fmt.Sprintf("GRANT USAGE ON SCHEMA public TO %s", quote(role)))
	return s.tcpDSN(role, password, db), role
}

// Exec runs query as the superuser on database db (a name, a DSN, or empty
// for postgres) and fails the test on an error. query may hold several
// statements separated by semicolons.
func (s *Server) Exec(tb testing.TB, db, query string) {
	tb.Helper()
	if _, err := s.root(databaseOf(tb, db)).Exec(query); err != nil {
		tb.Fatalf("pgtest: %s: %v", query, err)
	}
}

// root returns the superuser's connections to database db over the socket.
func (s *Server) root(db string) *sql.DB {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d, ok := s.roots[db]; ok {
		return d
	}
	// sql.Open only checks the driver name; errors show at first use.
	d, _ := sql.Open("pgx", s.SocketDSN(db)+" connect_timeout=2")
	s.roots[db] = d
	return d
}

// databaseOf returns the database a DSN names, or db itself when it is a
// bare name.
func databaseOf(tb testing.TB, db string) string {
	tb.Helper()
	if !strings.Contains(db, "=") && !strings.Contains(db, "://") {
		return db
	}
	cfg, err := pgconn.ParseConfig(db)
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	return cfg.Database
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

// quote quotes a PostgreSQL identifier.
func quote(name string) string {
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}
