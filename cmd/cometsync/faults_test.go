package main

import (
	"bytes"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cometsync/cometsync/internal/cometchat"
	"github.com/cometsync/cometsync/internal/cometchat/cometchattest"
	"github.com/cometsync/cometsync/internal/mariadbtest"
	"github.com/cometsync/cometsync/internal/syncer"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary builds cometsync once for the tests that need a real process
// (signals, crashes, two processes).
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "cometsync-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "cometsync")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// child is cometsync running as its own process.
type child struct {
	cmd         *exec.Cmd
	out, errout bytes.Buffer
	done        chan struct{}
}

func (e *env) start(args ...string) *child {
	e.t.Helper()
	c := &child{cmd: exec.Command(binary(e.t), args...), done: make(chan struct{})}
	c.cmd.Stdout, c.cmd.Stderr = &c.out, &c.errout
	if err := c.cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	go func() { _ = c.cmd.Wait(); close(c.done) }()
	e.t.Cleanup(func() {
		select {
		case <-c.done:
		default:
			_ = c.cmd.Process.Kill()
			<-c.done
		}
	})
	return c
}

// wait waits for the process to exit and returns how it went.
func (e *env) wait(c *child, within time.Duration) result {
	e.t.Helper()
	select {
	case <-c.done:
	case <-time.After(within):
		_ = c.cmd.Process.Kill()
		<-c.done
		e.t.Fatalf("the process did not exit within %s\nstdout:\n%s\nstderr:\n%s", within, c.out.String(), c.errout.String())
	}
	r := result{code: c.cmd.ProcessState.ExitCode(), stdout: c.out.String(), stderr: c.errout.String()}
	e.outputs = append(e.outputs, r.stdout, r.stderr)
	return r
}

// waitImported waits until the emulator imported at least n rows.
func (e *env) waitImported(n int) {
	e.t.Helper()
	eventually(e.t, 20*time.Second, func() string {
		if got := e.emu.Stats().ImportedRows; got < n {
			return fmt.Sprintf("the emulator imported %d rows, waiting for %d", got, n)
		}
		return ""
	})
}

// assertAllDelivered checks that CometChat holds exactly the database's
// groups, as they are now, and that the error store is empty.
func (e *env) assertAllDelivered() {
	e.t.Helper()
	rows, err := e.root.Query(`SELECT LOWER(guid), title, kind, owner_uid,
		join_password IS NULL AND icon_url IS NULL AND created_at IS NULL AND created_ms IS NULL AND meta IS NULL AND tags IS NULL
		FROM chat_groups`)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	got := e.emu.Groups()
	n := 0
	for rows.Next() {
		var guid, title, kind string
		var owner sql.NullString
		var plain bool
		if err := rows.Scan(&guid, &title, &kind, &owner, &plain); err != nil {
			e.t.Fatal(err)
		}
		if !plain {
			e.t.Fatalf("assertAllDelivered knows rows of guid, title, kind and owner only; %s has more columns set", guid)
		}
		n++
		g, ok := got[guid]
		if !ok {
			e.t.Errorf("group %s is missing from CometChat", guid)
			continue
		}
		// Exactly the row: nothing stale, nothing extra. The owner's details
		// are compared by uid only: they describe a CometChat user, which a
		// group update does not change.
		want := cometchat.Group{GUID: guid, Name: title, Type: kind, Owner: owner.String}
		if (g.GroupOwnerDetails != nil) != owner.Valid || (owner.Valid && g.GroupOwnerDetails.UID != owner.String) {
			e.t.Errorf("group %s in CometChat has owner details %+v, the database owner %v", guid, g.GroupOwnerDetails, owner)
		}
		g.GroupOwnerDetails = nil
		if len(g.Tags) == 0 {
			g.Tags = nil
		}
		if len(g.Metadata) == 0 {
			g.Metadata = nil
		}
		if !reflect.DeepEqual(g, want) {
			e.t.Errorf("group %s in CometChat is %+v, the database says %+v", guid, g, want)
		}
	}
	if len(got) != n {
		e.t.Errorf("CometChat holds %d groups, the database %d", len(got), n)
	}
	if rows := e.rowErrors(); len(rows) != 0 {
		e.t.Errorf("the error store holds rows a retry should have delivered: %+v", rows)
	}
}

func TestSIGTERMLetsInFlightFinishAndRecordsIt(t *testing.T) {
	e := newEnv(t)
	e.addGroups(600)
	e.emu.SetFaults(cometchattest.Faults{Latency: 300 * time.Millisecond})
	c := e.start("once", "--config", e.cfg)
	e.waitImported(100)
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	r := e.wait(c, 10*time.Second)
	if r.code != 1 || !strings.Contains(r.stderr, "interrupted") {
		t.Fatalf("after SIGTERM: exit %d, want 1 with 'interrupted':\n%s", r.code, r.stderr)
	}
	imported := e.emu.Stats().ImportedRows
	st := e.status()
	if isNull(st.Checkpoint) || imported >= 600 {
		t.Fatalf("after SIGTERM: checkpoint %s, %d imported; want a checkpoint partway", st.Checkpoint, imported)
	}
	// Every batch that was in flight finished and was recorded: the next
	// pass sends only what was never sent.
	e.emu.SetFaults(cometchattest.Faults{})
	e.emu.ResetStats()
	e.once(0)
	if resent := e.emu.Stats().Requests["PUT group 200"]; resent != 0 {
		t.Errorf("the pass after a graceful stop updated %d groups the first pass had acknowledged", resent)
	}
	if got := e.emu.Stats().ImportedRows; got != 600-imported {
		t.Errorf("second pass imported %d rows, want the %d never sent", got, 600-imported)
	}
	e.assertAllDelivered()
}

// Batches a worker has taken but whose request is still waiting for the
// rate limit are not sent after SIGTERM: only what was on the wire goes.
func TestSIGTERMSendsNoBatchWaitingForTheRateLimit(t *testing.T) {
	e := newEnv(t)
	e.addGroups(600)
	e.configure(func(o *cfgOpts) { o.importPM = 60; o.extra = "shutdown_timeout: 30s\n" }) // 1 import a second
	c := e.start("once", "--config", e.cfg)
	e.waitImported(100)
	atSignal := e.emu.Stats().ImportRequests
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	r := e.wait(c, 10*time.Second)
	if r.code != 1 {
		t.Fatalf("after SIGTERM: exit %d, want 1:\n%s", r.code, r.stderr)
	}
	// Three workers hold batches waiting for their turn at 1 a second; at
	// most one request can have been let through as the signal came.
	if after := e.emu.Stats().ImportRequests; after > atSignal+1 {
		t.Errorf("%d import requests at SIGTERM, %d at exit: batches waiting for the rate limit were sent after the signal", atSignal, after)
	}
	e.configure(func(o *cfgOpts) { o.importPM = 1000000 })
	e.once(0)
	e.assertAllDelivered()
}

func TestSecondSignalExitsAtOnce(t *testing.T) {
	e := newEnv(t)
	e.addGroups(100)
	e.configure(func(o *cfgOpts) { o.extra = "shutdown_timeout: 30s\n" })
	// Imports hang (their rows are held until the test ends); the read that
	// checks the key at the start of the pass does not.
	release := make(chan struct{})
	t.Cleanup(func() { close(release) }) // before the emulator's server closes
	e.emu.SetFaults(cometchattest.Faults{RejectRow: func(string) (string, string, bool) { <-release; return "", "", false }})
	c := e.start("once", "--config", e.cfg)
	eventually(t, 10*time.Second, func() string {
		if e.emu.Stats().ImportRequests == 0 {
			return "no request in flight yet"
		}
		return ""
	})
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
		t.Fatal("the first signal ended the process although requests were in flight and shutdown_timeout is 30s")
	case <-time.After(700 * time.Millisecond):
	}
	start := time.Now()
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	r := e.wait(c, 5*time.Second)
	if took := time.Since(start); took > 2*time.Second || r.code != 1 {
		t.Errorf("second signal: exit %d after %s, want 1 at once", r.code, took)
	}
}

func TestSIGKILLThenTheNextPassCompletes(t *testing.T) {
	e := newEnv(t)
	e.addGroups(3000)
	e.emu.SetFaults(cometchattest.Faults{Latency: 40 * time.Millisecond})
	c := e.start("once", "--config", e.cfg)
	e.waitImported(1200)
	_ = c.cmd.Process.Kill()
	e.wait(c, 5*time.Second)
	e.emu.SetFaults(cometchattest.Faults{})
	e.emu.ResetStats()
	e.once(0)
	// What the killed process had sent but not recorded is sent again (as
	// an update after "already exists"): at most the batches in flight and
	// those acknowledged but still waiting to be recorded.
	st := e.emu.Stats()
	resent := st.Requests["PUT group 200"]
	if limit := syncer.MaxUnrecorded(4) * 50; resent > limit {
		t.Errorf("re-sent %d groups after SIGKILL, more than could be unrecorded at any moment (%d)", resent, limit)
	}
	e.assertAllDelivered()
}

func TestSecondProcessOnTheSameStateExits(t *testing.T) {
	e := newEnv(t)
	e.addGroups(300)
	e.emu.SetFaults(cometchattest.Faults{Latency: 200 * time.Millisecond})
	first := e.start("once", "--config", e.cfg)
	e.waitImported(50)
	second := e.start("once", "--config", e.cfg)
	r := e.wait(second, 5*time.Second)
	if r.code != 1 || !strings.Contains(r.stderr, "in use by another cometsync process") {
		t.Errorf("second process: exit %d:\n%s", r.code, r.stderr)
	}
	if r := e.wait(first, 30*time.Second); r.code != 0 {
		t.Errorf("the first process failed: %d\n%s", r.code, r.stderr)
	}
	e.assertAllDelivered()
}

func TestSourceDyingMidPass(t *testing.T) {
	e := newEnv(t)
	proxy := mariadbtest.NewProxy(t, fmt.Sprintf("127.0.0.1:%d", srv.Port()))
	e.reader = strings.Replace(e.reader, fmt.Sprintf("127.0.0.1:%d", srv.Port()), proxy.Addr(), 1)
	e.configure(func(o *cfgOpts) { o.pageSize = 50 })
	e.addGroups(800)
	e.emu.SetFaults(cometchattest.Faults{Latency: 100 * time.Millisecond})
	c := e.start("once", "--config", e.cfg)
	e.waitImported(200)
	proxy.Break()
	r := e.wait(c, 30*time.Second)
	if r.code != 1 || !strings.Contains(r.stderr, "reading the source failed") || !strings.Contains(r.stderr, "run again once the database is reachable") {
		t.Fatalf("source died: exit %d:\n%s", r.code, r.stderr)
	}
	imported := e.emu.Stats().ImportedRows
	if st := e.status(); isNull(st.Checkpoint) {
		t.Errorf("nothing acknowledged was recorded (%d imported)", imported)
	}
	proxy.Restore(t)
	e.emu.SetFaults(cometchattest.Faults{})
	e.emu.ResetStats()
	e.once(0)
	if resent := e.emu.Stats().Requests["PUT group 200"]; resent > 0 {
		t.Errorf("%d acknowledged groups were sent again", resent)
	}
	e.assertAllDelivered()
}

func TestDatabaseUnreachableAtStartIsRetriedBriefly(t *testing.T) {
	e := newEnv(t)
	proxy := mariadbtest.NewProxy(t, fmt.Sprintf("127.0.0.1:%d", srv.Port()))
	e.reader = strings.Replace(e.reader, fmt.Sprintf("127.0.0.1:%d", srv.Port()), proxy.Addr(), 1)
	e.addGroups(10)
	e.writeConfig()
	proxy.Break()
	c := e.start("once", "--config", e.cfg)
	time.Sleep(1500 * time.Millisecond)
	proxy.Restore(t)
	if r := e.wait(c, 20*time.Second); r.code != 0 {
		t.Fatalf("a database back within the connect retry: exit %d\n%s", r.code, r.stderr)
	}
	e.assertAllDelivered()
}

func TestOutageEndsThePassInBoundedTime(t *testing.T) {
	e := newEnv(t)
	e.addGroups(120)
	// The config's retry: 2 attempts, 10..50ms backoff (see writeConfig).
	e.emu.SetFaults(cometchattest.Faults{Outage: true})
	start := time.Now()
	r := e.once(1)
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("a full outage took %s to fail the pass", took)
	}
	if !strings.Contains(r.stderr, "CometChat did not answer") || !strings.Contains(r.stderr, "503") {
		t.Errorf("outage message:\n%s", r.stderr)
	}
	if st := e.status(); !isNull(st.Checkpoint) || st.FailedRows != 0 {
		t.Errorf("after an outage: checkpoint %s, %d rows in the error store; want none of either", st.Checkpoint, st.FailedRows)
	}
	e.emu.SetFaults(cometchattest.Faults{})
	e.once(0)
	e.assertAllDelivered()
}

func TestAuthErrorStopsAtOnce(t *testing.T) {
	e := newEnv(t)
	e.addGroups(1000)
	e.configure(func(o *cfgOpts) { o.apiKey = "sk-revoked-222" })
	e.once(1)
	if n := e.emu.Stats().ImportRequests; n > 4 {
		t.Errorf("%d import requests after the key was refused; want at most the 4 in flight", n)
	}
}

func TestRateLimitAnswersAreWaitedOut(t *testing.T) {
	e := newEnv(t)
	e.addGroups(500)
	// The client is told CometChat allows far more than it does: it finds
	// out through 429s without Retry-After, and must slow down, not fail.
	e.emu.SetFaults(cometchattest.Faults{ImportPerSecond: 4})
	// The config's max_attempts is 2: a 429 must not use it up.
	e.once(0)
	if e.emu.Stats().TooManyRequests == 0 {
		t.Error("the emulator never answered 429; the test proves nothing")
	}
	e.assertAllDelivered()
}

func TestPartialImportsAreResentSafely(t *testing.T) {
	e := newEnv(t)
	e.addGroups(400)
	e.emu.SetFaults(cometchattest.Faults{PartialImportRate: 0.5, Seed: 7})
	for i := 0; i < 5; i++ {
		if r := e.run("once", "--config", e.cfg); r.code == 0 {
			break
		}
	}
	if e.emu.Stats().Requests["POST import 500"] == 0 {
		t.Fatal("no partial import happened; the test proves nothing")
	}
	e.assertAllDelivered()
}

// TestDeliveryUnderEveryFault: errors, resets, hangs, latency, rate limits
// and partial imports at once; passes are repeated as a CronJob would until
// one completes, then every group must be in CometChat exactly as in the
// database, and the error store empty. Then the same for updates.
func TestDeliveryUnderEveryFault(t *testing.T) {
	e := newEnv(t)
	e.addGroups(1200)
	// Small batches make many requests; retries need room: 6 attempts,
	// short timeouts for hung requests.
	e.configure(func(o *cfgOpts) { o.batchSize = 10 })
	cfg, _ := os.ReadFile(e.cfg)
	cfg = bytes.Replace(cfg, []byte("max_attempts: 2"), []byte("max_attempts: 6"), 1)
	cfg = bytes.Replace(cfg, []byte("timeout: 5s"), []byte("timeout: 300ms"), 1)
	if err := os.WriteFile(e.cfg, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	faults := cometchattest.Faults{Latency: 2 * time.Millisecond, ErrorRate: 0.08, ResetRate: 0.04, HangRate: 0.02,
		PartialImportRate: 0.08, ImportPerSecond: 20, OtherPerSecond: 400, RetryAfter: true, Seed: 42}
	e.emu.SetFaults(faults)
	passUntilDone := func() {
		t.Helper()
		for i := 0; i < 8; i++ {
			r := e.run("once", "--config", e.cfg)
			if r.code == 0 {
				return
			}
			if r.code != 1 {
				t.Fatalf("pass under faults: exit %d\n%s", r.code, r.stderr)
			}
		}
		t.Fatal("8 passes under faults and none completed")
	}
	passUntilDone()
	e.assertAllDelivered()
	st := e.emu.Stats()
	for _, k := range []string{"POST import 500", "POST import 429"} {
		if st.Requests[k] == 0 {
			t.Errorf("no %q answer: the faults did not happen (%v)", k, st.Requests)
		}
	}
	e.exec(`UPDATE chat_groups SET title = CONCAT(title, ' v2'), updated_at = NOW(6) - INTERVAL 1 SECOND WHERE id % 3 = 0`)
	passUntilDone()
	e.assertAllDelivered()
}

func TestRunExitsZeroOnSIGTERM(t *testing.T) {
	e := newEnv(t)
	e.addGroups(20)
	e.configure(func(o *cfgOpts) {
		o.extra = "schedule: \"@every 1s\"\nhttp:\n  listen: \"127.0.0.1:0\"\nlog:\n  level: warn\n"
	})
	cfg, _ := os.ReadFile(e.cfg)
	// The test's base config sets log.level info; the extra block above
	// must not duplicate the key, so drop the first one.
	cfg = bytes.Replace(cfg, []byte("log:\n  level: info\n  format: json\n"), []byte(""), 1)
	if err := os.WriteFile(e.cfg, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	c := e.start("run", "--config", e.cfg)
	e.waitImported(20)
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	r := e.wait(c, 15*time.Second)
	if r.code != 0 {
		t.Errorf("run after SIGTERM: exit %d, want 0\n%s", r.code, r.stderr)
	}
	if strings.Contains(r.stderr, "pass summary") {
		t.Errorf("log.level warn still logged info lines:\n%s", r.stderr)
	}
}
