package term

import (
	"context"
	"io"
	"os"

	"github.com/redis/go-redis/v9"
)

// Colour reports whether w should get ANSI colours: a terminal, and
// NO_COLOR unset.
func Colour(w io.Writer) bool {
	if _, ok := os.LookupEnv("NO_COLOR"); ok {
		return false
	}
	return IsTerminal(w)
}

// IsTerminal reports whether w is a character device.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// QuietGoRedis stops go-redis's own log lines, for commands that report
// connection trouble themselves. It is process-wide, so the library never
// calls it; a command owns its process.
func QuietGoRedis() { redis.SetLogger(quiet{}) }

type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}
