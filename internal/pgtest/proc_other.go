//go:build !linux

package pgtest

import "syscall"

// sysProcAttr runs a server program as cred (nil: as ourselves); there is
// no parent-death signal to ask for outside Linux.
func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred}
}

// killTree kills the postmaster; outside Linux its backends are left to
// notice its death.
func killTree(pid int) { _ = syscall.Kill(pid, syscall.SIGKILL) }
