package benchmark

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// spawnEnv, when set in the environment of this test binary, makes it run
// the command line it is given as a child, write the child's figures to
// the file the variable names, and exit with the child's code.
//
// Why a go-between: Go starts children with vfork semantics (CLONE_VM), and
// Linux charges the parent's peak RSS to the child's ru_maxrss when the
// child execs. Spawned straight from the benchmark process, which holds the
// emulator's groups, cometsync would report the benchmark's peak RSS (over
// 1.5 GiB with a million groups), not its own. The go-between is a fresh,
// small process, so the child's figure is its own, with the go-between's
// few MiB as a floor.
const spawnEnv = "COMETSYNC_BENCH_SPAWN_REPORT"

// usage is what spawn reports of its child.
type usage struct {
	Wall   time.Duration `json:"wall_ns"`
	MaxRSS int64         `json:"maxrss_kib"`
	User   time.Duration `json:"user_ns"`
	System time.Duration `json:"system_ns"`
	Code   int           `json:"code"`
}

func spawn(report string, args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "spawn: no command")
		return 2
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = os.Environ()
	start := time.Now()
	err := cmd.Run()
	u := usage{Wall: time.Since(start)}
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		fmt.Fprintln(os.Stderr, "spawn:", err)
		return 2
	}
	ps := cmd.ProcessState
	u.MaxRSS = ps.SysUsage().(*syscall.Rusage).Maxrss // KiB on Linux
	u.User, u.System, u.Code = ps.UserTime(), ps.SystemTime(), ps.ExitCode()
	raw, _ := json.Marshal(u)
	if err := os.WriteFile(report, raw, 0o600); err != nil {
		fmt.Fprintln(os.Stderr, "spawn:", err)
		return 2
	}
	return u.Code
}

// spawned runs name with args through the go-between and returns the
// child's figures; err is set only when the child could not be run (an exit
// code is in usage.Code).
func spawned(dir, name string, args ...string) (*exec.Cmd, func() (usage, error), error) {
	self, err := os.Executable()
	if err != nil {
		return nil, nil, err
	}
	f, err := os.CreateTemp(dir, "usage-*.json")
	if err != nil {
		return nil, nil, err
	}
	f.Close()
	cmd := exec.Command(self, append([]string{name}, args...)...)
	cmd.Env = append(os.Environ(), spawnEnv+"="+f.Name())
	return cmd, func() (usage, error) {
		var u usage
		raw, err := os.ReadFile(f.Name())
		os.Remove(f.Name())
		if err != nil {
			return u, fmt.Errorf("the go-between wrote no figures: %w", err)
		}
		return u, json.Unmarshal(raw, &u)
	}, nil
}

// TestSpawnReportsTheChildsRSS checks the go-between: a child's peak RSS is
// its own, not this process's, however much memory this process holds.
func TestSpawnReportsTheChildsRSS(t *testing.T) {
	held := make([]byte, 256<<20)
	for i := range held {
		held[i] = 1 // touched, so resident
	}
	cmd, figures, err := spawned(t.TempDir(), "/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	u, err := figures()
	if err != nil {
		t.Fatal(err)
	}
	if u.Code != 0 || u.MaxRSS <= 0 || u.MaxRSS > 64<<10 {
		t.Fatalf("/bin/true: exit %d, peak RSS %d KiB; want 0 and a few MiB (this process holds %d MiB)", u.Code, u.MaxRSS, len(held)>>20)
	}
	t.Logf("/bin/true through the go-between: peak RSS %.1f MiB (the floor of every figure)", float64(u.MaxRSS)/1024)
	runtime.KeepAlive(held)
}
