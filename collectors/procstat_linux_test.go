package collectors

import (
	"math"
	"os"
	"sync"
	"testing"

	"github.com/shirou/gopsutil/v4/process"
)

// The one read of /proc/self/stat gives what gopsutil gives.
func TestProcStatAgreesWithGopsutil(t *testing.T) {
	s, err := openStat()
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	proc, err := process.NewProcess(int32(os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	// Some CPU time to read.
	x := 0.0
	for i := range 20_000_000 {
		x += math.Sqrt(float64(i))
	}
	_ = x
	user, system, rss, err := s.read()
	if err != nil {
		t.Fatal(err)
	}
	times, err := proc.Times()
	if err != nil {
		t.Fatal(err)
	}
	mem, err := proc.MemoryInfo()
	if err != nil {
		t.Fatal(err)
	}
	// Read a moment apart: CPU time may have moved by a tick or two, and
	// resident memory by a few pages.
	if d := times.User - user; d < 0 || d > 0.05 {
		t.Errorf("user CPU %v s, gopsutil %v s", user, times.User)
	}
	if d := times.System - system; d < 0 || d > 0.05 {
		t.Errorf("system CPU %v s, gopsutil %v s", system, times.System)
	}
	if user <= 0 {
		t.Errorf("user CPU %v s after a busy loop", user)
	}
	if d := math.Abs(float64(int64(mem.RSS) - rss)); d > 1<<20 {
		t.Errorf("resident %d B, gopsutil %d B", rss, mem.RSS)
	}
}

// Anything but what the kernel writes is an error, not a wrong value.
func TestProcStatRefusesWhatItCannotRead(t *testing.T) {
	for _, in := range []string{
		"",
		"1 (cat) R 1 1",
		"1 cat R 1 1 1 1 1 1 1 1 1 1 x 1 1 1 1 1 1 1 1 1",
		"1 (a) b) R 1 1 1 1 1 1 1 1 1 1 -5 1 1 1 1 1 1 1 1 7",
	} {
		f, err := os.CreateTemp(t.TempDir(), "stat")
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString(in)
		s := &statFile{f: f, fd: int(f.Fd()), page: 4096}
		if u, st, rss, err := s.read(); err == nil {
			t.Errorf("%q read as %v %v %v", in, u, st, rss)
		}
		f.Close()
	}
	f, _ := os.CreateTemp(t.TempDir(), "stat")
	defer f.Close()
	f.WriteString("7 (a) b (c)) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0 100 1000 300\n")
	s := &statFile{f: f, fd: int(f.Fd()), page: 4096}
	u, st, rss, err := s.read()
	if err != nil || u != 2.5 || st != 0.5 || rss != 300*4096 {
		t.Errorf("read %v %v %v %v", u, st, rss, err)
	}
}

// Several readers may collect at once (the heartbeat's and a Prometheus
// scrape, say): reads of the one open file must not share a buffer.
func TestProcStatReadsConcurrently(t *testing.T) {
	s, err := openStat()
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 200 {
				if _, _, rss, err := s.read(); err != nil || rss <= 0 {
					t.Errorf("read: rss %d, %v", rss, err)
					return
				}
			}
		})
	}
	wg.Wait()
}
