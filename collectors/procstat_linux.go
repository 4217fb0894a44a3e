package collectors

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"

	"github.com/otel-heartbeat/heartbeat/internal/decimal"
)

// statFile reads this process's CPU time and resident memory from one
// /proc/self/stat kept open: one pread per heartbeat, where gopsutil opens,
// reads and closes /proc/self/stat and /proc/self/statm (about twenty
// system calls). The values are the ones gopsutil reports: utime and stime
// in clock ticks, rss in pages.
type statFile struct {
	f    *os.File
	fd   int // f's descriptor, read with pread(2) directly
	page int64
	mu   sync.Mutex // several readers may collect at once; one buffer
	buf  [1024]byte
}

// userHz is USER_HZ, the unit of utime and stime: 100 on every Linux
// architecture, whatever the kernel's own tick rate.
const userHz = 100

func openStat() (*statFile, error) {
	f, err := os.Open("/proc/self/stat")
	if err != nil {
		return nil, err
	}
	s := &statFile{f: f, fd: int(f.Fd()), page: int64(os.Getpagesize())}
	if _, _, _, err := s.read(); err != nil {
		f.Close()
		return nil, err
	}
	return s, nil
}

// read returns user and system CPU seconds and resident bytes.
func (s *statFile) read() (user, system float64, rss int64, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// One pread: the kernel writes the whole file at once, and os.File's
	// ReadAt would make a second call to find its end.
	if s.fd < 0 {
		return 0, 0, 0, errors.New("read /proc/self/stat: closed")
	}
	n, err := syscall.Pread(s.fd, s.buf[:], 0)
	if err != nil || n <= 0 {
		return 0, 0, 0, fmt.Errorf("read /proc/self/stat: %d bytes: %v", n, err)
	}
	b := s.buf[:n]
	// The fields after the command name, which is in parentheses and may
	// hold anything, parentheses included: cut at the last one.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, 0, errors.New("/proc/self/stat: no command name")
	}
	// Field 3 (state) is the first after it; utime is 14, stime 15, rss 24.
	var utime, stime int64
	field := 3
	for rest := b[i+1:]; len(rest) > 0 && field <= 24; field++ {
		rest = bytes.TrimLeft(rest, " ")
		end := bytes.IndexByte(rest, ' ')
		if end < 0 {
			end = len(rest)
		}
		var v int64
		if field == 14 || field == 15 || field == 24 {
			var ok bool
			if v, ok = decimal.Digits(bytes.TrimRight(rest[:end], "\n")); !ok {
				return 0, 0, 0, fmt.Errorf("/proc/self/stat field %d: %q is not a count", field, rest[:end])
			}
		}
		switch field {
		case 14:
			utime = v
		case 15:
			stime = v
		case 24:
			return float64(utime) / userHz, float64(stime) / userHz, v * s.page, nil
		}
		rest = rest[end:]
	}
	return 0, 0, 0, fmt.Errorf("/proc/self/stat: %d fields, want 24", field-1)
}

func (s *statFile) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fd = -1 // its number may be reused by the next file opened
	return s.f.Close()
}
