// Package benchmark measures cometsync end to end against the performance
// requirements: peak memory of a backfill, the time of a small incremental
// pass over a large table, and throughput against a zero-latency CometChat
// emulator compared with a bare read of the same query.
//
// The package has no code of its own: everything is in its _test.go files.
// The benchmarks build the real binary (as scripts/build-static.sh does, but
// keeping symbols), start a throwaway MariaDB, fill a realistic groups table
// (users joined as owners, an (updated_at, id) index), and run
// `cometsync once` as a child process against a SELECT-only user and an
// emulator served by the benchmark process, so that the figures include
// process start-up and the child's peak RSS can be read from its rusage.
//
// They take minutes and run only when asked:
//
//	go test -run '^$' -bench . -benchtime 1x -timeout 60m ./internal/benchmark
//
// A plain `go test ./...` only runs the quick harness test here.
// docs/PERFORMANCE.md records the figures and what dominates them.
package benchmark
