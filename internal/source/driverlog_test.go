package source

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/cometsync/cometsync/internal/mariadbtest"
)

// After the database drops its connections (a restart, a failover), the
// driver reports the dead idle connection it throws away. That message must
// reach the process's structured log, not stderr as plain text in the
// middle of a JSON stream.
func TestDriverMessagesGoToTheLog(t *testing.T) {
	db := newDB(t, groupsSchema)
	proxy := mariadbtest.NewProxy(t, fmt.Sprintf("127.0.0.1:%d", srv.Port()))
	dsn := strings.Replace(db.reader, fmt.Sprintf("127.0.0.1:%d", srv.Port()), proxy.Addr(), 1)
	core, logs := observer.New(zapcore.DebugLevel)
	s, err := Open(context.Background(), groupsConfig(dsn), zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	upper := upperBound(t, s) // leaves an idle connection in the pool
	proxy.Break()
	proxy.Restore(t)
	// Whether the driver notices the dead connection before it sends the
	// query (it throws it away: "closing bad idle connection") or only when
	// the answer does not come ("connection reset by peer", "unexpected
	// EOF", and this read fails as a pass would) depends on when the close
	// reaches this side. Either way
	// the next read works, and the driver said so in the log.
	if _, err := s.ReadPage(context.Background(), nil, upper, 10); err != nil {
		if _, err := s.ReadPage(context.Background(), nil, upper, 10); err != nil {
			t.Fatalf("a second read after the database came back: %v", err)
		}
	}
	driver := logs.FilterLoggerName("source.mysql").All()
	if len(driver) == 0 {
		t.Fatalf("no driver message in the log after a dropped connection; the log has: %v", logs.All())
	}
	if m := driver[0].Message; !strings.Contains(m, "connection") && !strings.Contains(m, "EOF") || driver[0].Level != zapcore.WarnLevel {
		t.Errorf("driver message: %s %q", driver[0].Level, m)
	}
}

// A database that stops answering but keeps the connection open must fail
// the read (the pass ends with exit 1 and the next one goes on), not hang
// it forever.
func TestAStalledDatabaseFailsTheRead(t *testing.T) {
	db := newDB(t, groupsSchema)
	proxy := mariadbtest.NewProxy(t, fmt.Sprintf("127.0.0.1:%d", srv.Port()))
	dsn := strings.Replace(db.reader, fmt.Sprintf("127.0.0.1:%d", srv.Port()), proxy.Addr(), 1)
	dsn += "?readTimeout=1s"
	s := openSource(t, groupsConfig(dsn))
	upper := upperBound(t, s)
	proxy.Stall()
	done := make(chan error, 1)
	go func() {
		_, err := s.ReadPage(context.Background(), nil, upper, 10)
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "did not answer within the DSN's readTimeout") {
			t.Errorf("a read from a stalled database: %v, want an error that says the database did not answer", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a read from a stalled database hung (readTimeout 1s)")
	}
	proxy.Unstall()
	if _, err := s.ReadPage(context.Background(), nil, upper, 10); err != nil {
		t.Errorf("a read after the database answers again: %v", err)
	}
}

// Without a readTimeout in the DSN, cometsync sets one; the user's wins.
func TestMySQLReadTimeoutDefault(t *testing.T) {
	for dsn, want := range map[string]time.Duration{
		"u:p@tcp(db:3306)/chat?parseTime=true":                 DefaultReadTimeout,
		"u:p@tcp(db:3306)/chat?parseTime=true&readTimeout=30s": 30 * time.Second,
	} {
		mc, err := mysqlConfig(dsn)
		if err != nil || mc.ReadTimeout != want {
			t.Errorf("%s: readTimeout %v (%v), want %v", dsn, mc.ReadTimeout, err, want)
		}
	}
}
