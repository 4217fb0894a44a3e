//go:build !linux

package collectors

import "errors"

// statFile exists on Linux only; elsewhere gopsutil reads the values.
type statFile struct{}

func openStat() (*statFile, error) { return nil, errors.New("no /proc") }

func (s *statFile) read() (user, system float64, rss int64, err error) {
	return 0, 0, 0, errors.New("no /proc")
}

func (s *statFile) close() error { return nil }
