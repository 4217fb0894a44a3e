// Package leaktest checks, after a package's tests, that every goroutine
// they started has ended.
//
// It is goleak with a longer grace period: go-redis's connection pool may
// leave a dial-retry goroutine that notices its pool was closed only on its
// next one-second tick. Waiting for it proves it ends; ignoring it would not.
package leaktest

import (
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// Grace is how long goroutines may take to end after the tests.
const Grace = 3 * time.Second

// VerifyTestMain runs the tests, then fails the run if goroutines are still
// running after Grace.
func VerifyTestMain(m *testing.M) { os.Exit(Run(m)) }

// Run is VerifyTestMain for a TestMain with clean-up of its own: it returns
// the exit code instead of exiting.
func Run(m *testing.M) int {
	code := m.Run()
	if code == 0 {
		deadline := time.Now().Add(Grace)
		for {
			err := goleak.Find()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				fmt.Fprintf(os.Stderr, "leaktest: goroutines still running %v after the tests: %v\n", Grace, err)
				code = 1
				break
			}
			time.Sleep(50 * time.Millisecond) // polling a timer inside go-redis we cannot observe
		}
	}
	return code
}
