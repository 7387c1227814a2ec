package pgtest

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

func TestAvailable(t *testing.T) {
	if err := Available(); err != nil {
		t.Fatalf("Available() = %v on a machine that has postgresql", err)
	}
	// Without pg_config on $PATH, Debian's /usr/lib/postgresql still
	// holds the programs.
	t.Setenv("PATH", t.TempDir())
	if err := Available(); err != nil {
		t.Errorf("Available() with an empty $PATH = %v, want the %s fallback", err, versionsDir)
	}
}

func TestMissingBinaries(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	t.Setenv("CI", "")
	root := t.TempDir()
	_, err := findBinariesIn(root)
	if err == nil {
		t.Fatal("findBinariesIn(an empty directory) found programs")
	}
	for _, want := range []string{"initdb and postgres", root, "install Debian's postgresql package (make test does"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error = %q, want it to say %q", err, want)
		}
	}
}

func TestVersionDirsNewestFirst(t *testing.T) {
	root := t.TempDir()
	for _, name := range []string{"9.6", "17", "15", "common"} {
		if err := os.Mkdir(filepath.Join(root, name), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{filepath.Join(root, "17/bin"), filepath.Join(root, "15/bin"), filepath.Join(root, "9.6/bin")}
	if got := versionDirs(root); !reflect.DeepEqual(got, want) {
		t.Errorf("versionDirs = %q, want %q", got, want)
	}
}

func TestKeywordDSN(t *testing.T) {
	url := "postgres://some%20one:p%27w%20d%5C@127.0.0.1:5433/db_1?sslmode=disable"
	kv := KeywordDSN(t, url)
	if strings.Contains(kv, "://") {
		t.Errorf("KeywordDSN = %q, want keyword/value form", kv)
	}
	fromURL, err := pgconn.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	fromKV, err := pgconn.ParseConfig(kv)
	if err != nil {
		t.Fatalf("pgx cannot parse KeywordDSN's %q: %v", kv, err)
	}
	for _, f := range []struct{ name, got, want string }{
		{"host", fromKV.Host, fromURL.Host},
		{"user", fromKV.User, fromURL.User},
		{"password", fromKV.Password, fromURL.Password},
		{"database", fromKV.Database, fromURL.Database},
	} {
		if f.got != f.want {
			t.Errorf("%s from %q = %q, want %q as from the URL", f.name, kv, f.got, f.want)
		}
	}
	if fromKV.Port != 5433 || fromKV.TLSConfig != nil {
		t.Errorf("port %d, TLS %v from %q; want 5433 without TLS", fromKV.Port, fromKV.TLSConfig != nil, kv)
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
