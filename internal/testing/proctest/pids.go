package proctest

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// Gone fails the test for each of pids that is still there, running or
// exited but not yet reaped by its parent: what a program that stops its
// children leaves behind.
func Gone(t testing.TB, what string, pids []int) {
	t.Helper()
	for _, pid := range pids {
		p, err := os.FindProcess(pid)
		if err != nil {
			continue
		}
		if err := p.Signal(syscall.Signal(0)); !errors.Is(err, os.ErrProcessDone) {
			t.Errorf("%s process %d is still there (signal 0: %v)", what, pid, err)
		}
	}
}

// Running reports whether pid is a process that has not exited, from
// Linux's /proc: a zombie, exited and waiting to be reaped, is not.
func Running(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the command's closing parenthesis.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] != 'Z'
}
