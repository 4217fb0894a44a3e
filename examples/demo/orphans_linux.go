package main

import (
	"os/exec"
	"syscall"
)

// endWithUs has the kernel send cmd SIGTERM when the launcher dies, even
// by SIGKILL, so that the demo and its services never outlive it.
func endWithUs(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
