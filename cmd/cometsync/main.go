// Command cometsync keeps a company's chat groups, which live in its own SQL
// database, in step with CometChat.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version is stamped at build time: -ldflags "-X main.version=…".
var version = "dev"

func main() {
	tuneGC()
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// tuneGC trades a little memory for CPU: a pass allocates briefly for every
// row (mapping, JSON) and keeps little, so collecting half as often saves
// about a tenth of a backfill's CPU, while the memory limit keeps peak RSS
// flat (~35 MiB from 100k to 1M rows; see docs/PERFORMANCE.md). GOGC and
// GOMEMLIMIT in the environment still win.
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(200)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(40 << 20)
	}
}

// Exit codes: 0 the pass completed (row errors allowed), 1 it failed,
// 2 bad config or usage.
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2
)

// exitError carries the exit code a failure deserves up to run, the only
// place that decides exit codes.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageErr(err error) error  { return &exitError{code: exitUsage, err: err} }
func failedErr(err error) error { return &exitError{code: exitFailed, err: err} }

// run executes the command line and returns the process's exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		fmt.Fprintf(stderr, "cometsync: %v\n", ee.err)
		return ee.code
	}
	// Anything cobra itself refused (unknown flag, missing argument) is usage.
	fmt.Fprintf(stderr, "cometsync: %v\nRun 'cometsync --help' for usage.\n", err)
	return exitUsage
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "cometsync",
		Short: "Keep chat groups from your SQL database in step with CometChat",
		Long: `cometsync reads the groups that changed in your SQL database since its last pass
(by a watermark on a cursor column and a unique tiebreaker), maps each row to
CometChat's group import object, and upserts them in batches. Its checkpoint and
the rows that failed live in a local SQLite state file.

Start with 'cometsync demo' (no database or account needed), then write a config
(see config.example.yaml), run 'cometsync once --config F --dry-run', then
'cometsync once --config F'.`,
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
		// No command is a usage error (exit 2), with the help to pick one.
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cmd.SetOut(cmd.ErrOrStderr())
			_ = cmd.Help()
			return usageErr(errors.New("a command is required"))
		},
	}
	root.AddCommand(newOnceCmd(), newRunCmd(), newCheckCmd(), newStatusCmd(), newErrorsCmd(), newDemoCmd())
	return root
}
