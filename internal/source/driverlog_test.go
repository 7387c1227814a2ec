package source

import (
	"context"
	"fmt"
	"strings"
	"testing"

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
	if _, err := s.ReadPage(context.Background(), nil, upper, 10); err != nil {
		t.Fatalf("a read after the database came back: %v", err)
	}
	driver := logs.FilterLoggerName("source.mysql").All()
	if len(driver) == 0 {
		t.Fatalf("no driver message in the log after a dropped connection; the log has: %v", logs.All())
	}
	if !strings.Contains(driver[0].Message, "connection") || driver[0].Level != zapcore.WarnLevel {
		t.Errorf("driver message: %s %q", driver[0].Level, driver[0].Message)
	}
}
