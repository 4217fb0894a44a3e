package valkeyexporter

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// go-redis bounds a command by deadlines, never by cancellation: against a
// stalled server, a send whose context is cancelled waits for its read
// timeout. So that a send can run on the exporter's own goroutine and
// still return when its context ends, the client the exporter builds dials
// through cutters: connections that record which send last used them, and
// that the exporter can cut while that send is in progress, making their
// reads and writes fail at once for the rest of it. A cut ends with its
// send: the next send's deadlines are its own, so a connection go-redis
// put back in the pool before the cut landed still works, and a cut that
// lands after its send ended does nothing.
type cutters struct {
	mu       sync.Mutex
	live     map[*cutConn]struct{}
	send     atomic.Uint64        // the last send begun, counted from 1
	inflight atomic.Uint64        // the send in progress; 0 between sends
	cut      atomic.Uint64        // the send cut: connections it touches later are cut too
	now      func() time.Duration // a monotonic clock
}

func newCutters() *cutters {
	start := time.Now()
	return &cutters{
		live: make(map[*cutConn]struct{}),
		now:  func() time.Duration { return time.Since(start) },
	}
}

// wrap makes opt's client dial cutters: go-redis's own dialer, TLS
// included, under a wrapper.
func (cs *cutters) wrap(opt *redis.UniversalOptions) {
	inner := opt.Dialer
	if inner == nil {
		inner = redis.NewDialer(&redis.Options{DialTimeout: opt.DialTimeout, TLSConfig: opt.TLSConfig})
	}
	opt.Dialer = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := inner(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		cc := &cutConn{Conn: c, set: cs}
		cc.used.Store(cs.send.Load())
		cs.mu.Lock()
		cs.live[cc] = struct{}{}
		cs.mu.Unlock()
		if sc, ok := c.(syscall.Conn); ok {
			// go-redis peeks at an idle plain connection through its
			// file descriptor before reusing it; keep that possible.
			return &cutSysConn{cutConn: cc, sc: sc, recent: recentConn{sc}}, nil
		}
		return cc, nil
	}
}

// begin marks the start of a send. It returns cut, which cuts the
// connections the send has used and will use, and does nothing once the
// send has ended, and end, to call when the send returns.
func (cs *cutters) begin() (cut, end func()) {
	n := cs.send.Add(1)
	cs.inflight.Store(n)
	cut = func() {
		cs.mu.Lock()
		defer cs.mu.Unlock()
		if cs.inflight.Load() != n {
			return // the send is over
		}
		// A connection the send has not touched yet, it may touch after
		// this: it then cuts itself (see use).
		cs.cut.Store(n)
		for c := range cs.live {
			if c.used.Load() == n {
				c.cut(n)
			}
		}
	}
	end = func() {
		cs.mu.Lock()
		cs.inflight.Store(0)
		cs.mu.Unlock()
	}
	return cut, end
}

// cutConn is one connection of the exporter's client.
type cutConn struct {
	net.Conn
	set    *cutters
	used   atomic.Uint64 // the last send that read or wrote
	lastIO atomic.Int64  // when it last read or wrote, on set.now

	mu    sync.Mutex // orders cut against go-redis setting deadlines
	cutIn uint64     // the send it was cut in
}

var longAgo = time.Unix(1, 0)

func (c *cutConn) cut(send uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cutIn = send
	_ = c.Conn.SetDeadline(longAgo)
}

func (c *cutConn) Read(b []byte) (int, error) {
	c.use()
	return c.Conn.Read(b)
}

func (c *cutConn) Write(b []byte) (int, error) {
	c.use()
	return c.Conn.Write(b)
}

// use records that the current send reads or writes c, and cuts c when
// that send was cut before it got here. Either the cut sees the record or
// this sees the cut: both are stored before they are read.
func (c *cutConn) use() {
	n := c.set.send.Load()
	c.used.Store(n)
	c.lastIO.Store(int64(c.set.now()))
	// Send 0 is none: before the first send, cut and inflight are 0 too.
	if n != 0 && c.set.cut.Load() == n && c.set.inflight.Load() == n {
		c.cut(n)
	}
}

func (c *cutConn) SetDeadline(t time.Time) error {
	return c.deadline(t, c.Conn.SetDeadline)
}

func (c *cutConn) SetReadDeadline(t time.Time) error {
	return c.deadline(t, c.Conn.SetReadDeadline)
}

func (c *cutConn) SetWriteDeadline(t time.Time) error {
	return c.deadline(t, c.Conn.SetWriteDeadline)
}

// deadline sets a deadline go-redis asks for, unless c was cut in the send
// still in progress: that one must not get its time back.
func (c *cutConn) deadline(t time.Time, set func(time.Time) error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cutIn != 0 && c.cutIn == c.set.inflight.Load() {
		t = longAgo
	}
	return set(t)
}

func (c *cutConn) Close() error {
	c.set.mu.Lock()
	delete(c.set.live, c)
	c.set.mu.Unlock()
	return c.Conn.Close()
}

// cutSysConn is a cutConn over a connection with a file descriptor.
type cutSysConn struct {
	*cutConn
	sc     syscall.Conn
	recent recentConn
}

// peekAfter is how long a connection must have been idle for go-redis's
// peek before reusing it to be worth a system call. Valkey closes an idle
// client after its `timeout`, counted in whole seconds, and proxies cut
// idle connections after longer still; a connection used within the last
// second was closed, if at all, by a restart, a failover or CLIENT KILL.
// At the default interval every heartbeat on a plain connection is still
// looked at (go-redis never peeks through TLS); at intervals up to about a
// second, a heartbeat sent on a connection closed since the last one
// fails, and the next goes out on a new connection.
const peekAfter = time.Second

// SyscallConn hands go-redis the descriptor to peek at, when c has been
// idle for peekAfter; otherwise a view of it whose peek finds nothing.
// go-redis uses the descriptor only to peek (before reusing a connection,
// and, on RESP3, for push notifications, which it skips itself within 5 s
// of a peek).
func (c *cutSysConn) SyscallConn() (syscall.RawConn, error) {
	if c.set.now()-time.Duration(c.lastIO.Load()) >= peekAfter {
		return c.sc.SyscallConn()
	}
	return &c.recent, nil
}

// recentConn is a connection used within peekAfter: its Read does not call
// f, as a peek that found the connection open and empty would report. It
// is part of its cutSysConn, so that handing it out allocates nothing.
type recentConn struct{ sc syscall.Conn }

func (*recentConn) Read(func(fd uintptr) bool) error { return nil }

func (r *recentConn) Control(f func(fd uintptr)) error {
	raw, err := r.sc.SyscallConn()
	if err != nil {
		return err
	}
	return raw.Control(f)
}

func (r *recentConn) Write(f func(fd uintptr) bool) error {
	raw, err := r.sc.SyscallConn()
	if err != nil {
		return err
	}
	return raw.Write(f)
}
