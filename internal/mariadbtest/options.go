package mariadbtest

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// Option changes how Start, StartMain or RunMain configure the server.
// Without options the server has no binary log.
type Option func(*Server)

// WithBinlog starts the server with binary logging as a binlog reader
// needs it: --log-bin, binlog_format=ROW, binlog_row_image=FULL and
// server_id=1. MariaDB numbers every transaction with a GTID (domain 0,
// server 1) in any case. Commits reach the OS at once
// (innodb_flush_log_at_trx_commit=2), so Kill loses nothing committed and
// the tables agree with the binary log after a Restart.
func WithBinlog() Option {
	return func(s *Server) {
		s.args = append(s.args,
			"--log-bin=binlog",
			"--server-id=1",
			"--binlog-format=ROW",
			"--binlog-row-image=FULL",
			"--innodb-flush-log-at-trx-commit=2",
		)
	}
}

// WithArgs adds mariadbd options after the defaults and those of the
// options before it, so a later one wins: WithBinlog() then
// WithArgs("--binlog-format=MIXED") is a server with MariaDB's own default
// format.
func WithArgs(args ...string) Option {
	return func(s *Server) { s.args = append(s.args, args...) }
}

// serverOptions are the InnoDB options and those of the Options; with a
// binary log asked for, the default --skip-log-bin goes.
func (s *Server) serverOptions() []string {
	opts := slices.Clone(innodbOptions)
	if slices.ContainsFunc(s.args, func(a string) bool { return a == "--log-bin" || strings.HasPrefix(a, "--log-bin=") }) {
		opts = slices.DeleteFunc(opts, func(a string) bool { return a == "--skip-log-bin" })
	}
	return append(opts, s.args...)
}

// Kill kills mariadbd at once, as a crash does, and keeps its datadir:
// Restart starts it again on the same data and port. Connections to it
// break.
func (s *Server) Kill(tb testing.TB) {
	tb.Helper()
	if s.cmd == nil {
		tb.Fatal("mariadbtest: Kill: the server is not running")
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd, s.done = nil, nil
}

// Restart starts a killed server again on its datadir and port, and waits
// until root can connect. It recovers what a crash left, as any MariaDB
// does.
func (s *Server) Restart(tb testing.TB) {
	tb.Helper()
	if s.cmd != nil {
		tb.Fatal("mariadbtest: Restart: the server is running; Kill it first")
	}
	if err := s.launch(s.port); err != nil {
		tb.Fatal(fmt.Errorf("mariadbtest: restart on port %d: %w", s.port, err))
	}
}
