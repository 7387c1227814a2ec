package mariadbtest

import "syscall"

// sysProcAttr makes the kernel kill mariadbd when the test binary dies
// without running its cleanup (a panic, `go test -timeout`, a SIGKILL), so
// no stray servers outlive a test run.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
