//go:build unix

package cometchattest

import (
	"syscall"
	"time"
)

// processCPU returns the CPU time the test process has used so far, the
// garbage collector's included.
func processCPU() (time.Duration, bool) {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
