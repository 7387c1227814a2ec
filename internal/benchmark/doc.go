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
// process start-up. The graph benchmarks (graph_test.go) fill a database of
// their own with users, groups and memberships and run the users and members
// streams alone, members via rest against an emulator that enforces the
// other-calls limit, and the three streams together; the reconcile
// benchmarks (reconcile_test.go) time `once --reconcile` after rows vanished.
// The child is started through a small go-between (the
// test binary itself, see spawnEnv in spawn_test.go): started straight from
// the benchmark process, the child's ru_maxrss would report the benchmark
// process's own peak RSS, emulator included.
//
// They take minutes and run only when asked:
//
//	go test -run '^$' -bench . -benchtime 1x -timeout 60m ./internal/benchmark
//
// A plain `go test ./...` only runs the quick tests of the harness here.
// With COMETSYNC_BENCH_PERF=DIR, every child runs under `perf record -g`
// writing DIR/<benchmark>.<n>.perf.data (n numbers the run's processes);
// BenchmarkPassInProcess100k wires a pass in the test process for
// `go test -cpuprofile`. docs/PERFORMANCE.md records
// the figures and what dominates them.
package benchmark
