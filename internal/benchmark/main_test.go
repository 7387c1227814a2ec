package benchmark

import (
	"fmt"
	"os"
	"testing"

	"github.com/cometsync/cometsync/internal/mariadbtest"
)

// srv is the one MariaDB every benchmark of the run shares; the tables on it
// are filled once and reused (see table).
var srv *mariadbtest.Server

// scratch holds what outlives one benchmark: the built binary and the
// seeded state of the incremental benchmark.
var scratch string

func TestMain(m *testing.M) {
	if out := os.Getenv(spawnEnv); out != "" {
		// This is not a test run but the spawner of one child (see spawn).
		os.Exit(spawn(out, os.Args[1:]))
	}
	var err error
	scratch, err = os.MkdirTemp("", "cometsync-bench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := mariadbtest.RunMain(m, &srv)
	// RunMain has stopped the server; the shared tables' pools and
	// emulators close without it.
	closeShared()
	os.RemoveAll(scratch)
	os.Exit(code)
}
