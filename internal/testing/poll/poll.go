// Package poll waits for a state that lives in another process (a server,
// a command under test), which sends no signal when it changes: it asks
// again every 20 ms until the state holds or the time is up.
package poll

import (
	"testing"
	"time"
)

// Every is how often Until asks.
const Every = 20 * time.Millisecond

// Until asks cond every Every until it holds, and fails the test, naming
// what it waited for, when it has not within timeout.
func Until(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v", what, timeout)
		}
		time.Sleep(Every) // another process's state: there is no event to wait on
	}
}

// Within asks cond every Every until it holds, and reports whether it did
// within timeout, for a test that says itself what was wrong.
func Within(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(Every) // another process's state: there is no event to wait on
	}
	return true
}
