package main

import (
	"os/exec"
	"syscall"
)

// endWithUs has the kernel send cmd SIGTERM when the demo dies, even by
// SIGKILL: a service then sends its stopping heartbeat and ends, never
// outliving the demo.
func endWithUs(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
