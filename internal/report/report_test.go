package report

import (
	"errors"
	"testing"
)

func TestFailureIsReportedOncePerEpisode(t *testing.T) {
	var got []error
	r := &Reporter{Handle: func(err error) { got = append(got, err) }}
	e1, e2 := errors.New("first"), errors.New("second")
	r.Fail("cpu", e1)
	r.Fail("cpu", e1)
	r.Fail("cpu", e2)
	r.Fail("queue_size", e2)
	if len(got) != 2 {
		t.Fatalf("reported %v, want one error per key", got)
	}
	if !r.Failing("cpu") {
		t.Error("cpu is not marked failing")
	}
	r.OK("cpu")
	r.Fail("cpu", e1)
	if len(got) != 3 {
		t.Fatalf("a failure after recovery was not reported: %v", got)
	}
}

// Resolve says a failure's end once, and nothing for one not ongoing.
func TestResolveSaysTheEndOfAnOngoingFailure(t *testing.T) {
	var got []string
	r := &Reporter{Handle: func(err error) { got = append(got, err.Error()) }}
	r.Resolve("lease", errors.New("never failed"))
	r.Fail("lease", errors.New("lost"))
	r.Resolve("lease", errors.New("back"))
	r.Resolve("lease", errors.New("back twice"))
	if len(got) != 2 || got[0] != "lost" || got[1] != "back" || r.Failing("lease") {
		t.Errorf("reported %q, failing %v; want lost, then back, once", got, r.Failing("lease"))
	}
}
