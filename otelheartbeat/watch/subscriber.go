package watch

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
)

// subscriber is a lean RESP2 pattern subscription for the monitor's hot
// path. go-redis allocates a message and three strings for every
// publication and the monitor would then copy the payload again to decode
// it; this reads each pmessage frame from its own buffer and hands out
// views that stay valid until the next call, so a heartbeat is decoded
// where it arrived. It is used for single-node clients whose options it can
// replay (address, user, password, database, TLS); any other client keeps
// go-redis's PubSub.
type subscriber struct {
	conn net.Conn
	r    *bufio.Reader
	// beforeRead, when set, runs on the reading goroutine each time r is
	// about to read from conn, which may wait: a reader hands over what it
	// has gathered then (see outbox). Its error is the read's.
	beforeRead func() error
	channel    []byte // reused copy of the last channel name
	skip       []byte // scratch for discarding oversized payloads

	wmu     sync.Mutex // writes after the handshake: probes, new subscriptions
	scratch []byte
}

// connReader is what a subscriber's buffer reads from: its connection,
// after its beforeRead.
type connReader struct{ s *subscriber }

func (c connReader) Read(p []byte) (int, error) {
	if c.s.beforeRead != nil {
		if err := c.s.beforeRead(); err != nil {
			return 0, err
		}
	}
	return c.s.conn.Read(p)
}

// subscriberOptions is what a subscriber needs to dial.
type subscriberOptions struct {
	addr               string
	username, password string
	db                 int
	tls                *tls.Config
	dialTimeout        time.Duration
}

// leanOptions returns the options of c when the lean subscriber can stand
// in for it.
func leanOptions(c redis.UniversalClient) (subscriberOptions, bool) {
	rc, ok := c.(*redis.Client)
	if !ok {
		return subscriberOptions{}, false
	}
	o := rc.Options()
	// A Sentinel failover client is a *redis.Client whose dialer asks the
	// sentinels for the primary; go-redis names its address so.
	if o.Addr == "FailoverClient" {
		return subscriberOptions{}, false
	}
	if o.Dialer != nil && o.Network != "tcp" && o.Network != "" || o.CredentialsProvider != nil ||
		o.CredentialsProviderContext != nil || o.StreamingCredentialsProvider != nil || o.OnConnect != nil {
		return subscriberOptions{}, false
	}
	return subscriberOptions{
		addr: o.Addr, username: o.Username, password: o.Password, db: o.DB,
		tls: o.TLSConfig, dialTimeout: o.DialTimeout,
	}, true
}

// maxFrame bounds one payload the subscriber reads into memory; larger ones
// are read past and reported.
const maxFrame = wire.MaxMessageSize + 1

// dialSubscriber connects and subscribes: PSUBSCRIBE to one pattern, or
// SSUBSCRIBE to shard channels that must all belong to this node.
func dialSubscriber(ctx context.Context, o subscriberOptions, command string, targets ...string) (*subscriber, error) {
	timeout := o.dialTimeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(dctx, "tcp", o.addr)
	if err != nil {
		return nil, err
	}
	if o.tls != nil {
		tc := tls.Client(conn, o.tls.Clone())
		if err := tc.HandshakeContext(dctx); err != nil {
			conn.Close()
			return nil, err
		}
		conn = tc
	}
	s := &subscriber{conn: conn}
	s.r = bufio.NewReaderSize(connReader{s}, 64<<10)
	// The handshake must finish within the dial timeout too.
	_ = conn.SetDeadline(time.Now().Add(timeout))
	fail := func(err error) (*subscriber, error) {
		conn.Close()
		return nil, err
	}
	if o.password != "" {
		args := []string{"AUTH", o.password}
		if o.username != "" {
			args = []string{"AUTH", o.username, o.password}
		}
		if err := s.command(args[0], args[1:]...); err != nil {
			return fail(err)
		}
		if err := s.simpleReply("AUTH"); err != nil {
			return fail(err)
		}
	}
	if o.db != 0 {
		if err := s.command("SELECT", strconv.Itoa(o.db)); err != nil {
			return fail(err)
		}
		if err := s.simpleReply("SELECT"); err != nil {
			return fail(err)
		}
	}
	// One command per target: a single SSUBSCRIBE must keep all its
	// channels in one slot. They go out together and are confirmed in order.
	if _, err := s.conn.Write(appendEach(nil, command, targets)); err != nil {
		return fail(err)
	}
	want := strings.ToLower(command)
	for range targets {
		kind, _, _, err := s.frame()
		if err != nil {
			return fail(fmt.Errorf("%s %s: %w", command, strings.Join(targets, " "), err))
		}
		if kind != want {
			return fail(fmt.Errorf("%s: unexpected %q", command, kind))
		}
	}
	_ = conn.SetDeadline(time.Time{})
	return s, nil
}

func (s *subscriber) close() error { return s.conn.Close() }

// writeTimeout bounds a write after the handshake, so that a probe of a
// stalled server cannot hold its caller: a write that cannot finish fails
// the connection, which the reader then reports.
const writeTimeout = time.Second

// ping sends PING with payload; the answer is a "pong" frame, in order
// with the messages.
func (s *subscriber) ping(payload string) error {
	return s.write(func(b []byte) []byte { return appendCommand(b, "PING", payload) })
}

// subscribe adds shard channels to the subscription, one command each (a
// single SSUBSCRIBE must keep all its channels in one slot); the server's
// confirmations arrive as frames.
func (s *subscriber) subscribe(command string, targets ...string) error {
	return s.write(func(b []byte) []byte { return appendEach(b, command, targets) })
}

// write sends what build appends to the connection's scratch buffer.
func (s *subscriber) write(build func([]byte) []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.scratch = build(s.scratch[:0])
	_ = s.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, err := s.conn.Write(s.scratch)
	return err
}

func (s *subscriber) command(command string, args ...string) error {
	_, err := s.conn.Write(appendCommand(nil, command, args...))
	return err
}

// appendEach appends command once for each target: one SSUBSCRIBE must
// keep all its channels in one slot, so each goes alone.
func appendEach(b []byte, command string, targets []string) []byte {
	for _, t := range targets {
		b = appendCommand(b, command, t)
	}
	return b
}

// appendCommand appends a command and its arguments as one RESP command.
func appendCommand(b []byte, command string, args ...string) []byte {
	b = append(b, '*')
	b = strconv.AppendInt(b, int64(1+len(args)), 10)
	b = append(b, '\r', '\n')
	b = appendBulk(b, command)
	for _, a := range args {
		b = appendBulk(b, a)
	}
	return b
}

func appendBulk(b []byte, a string) []byte {
	b = append(b, '$')
	b = strconv.AppendInt(b, int64(len(a)), 10)
	b = append(b, '\r', '\n')
	b = append(b, a...)
	return append(b, '\r', '\n')
}

// simpleReply reads +OK, or returns the server's error.
func (s *subscriber) simpleReply(cmd string) error {
	line, err := s.line()
	if err != nil {
		return fmt.Errorf("%s: %w", cmd, err)
	}
	switch {
	case len(line) > 0 && line[0] == '+':
		return nil
	case len(line) > 0 && line[0] == '-':
		return fmt.Errorf("%s: %s", cmd, line[1:])
	}
	return fmt.Errorf("%s: unexpected reply %q", cmd, line)
}

// line reads one CRLF-terminated line, without the CRLF; the result is a
// view into the buffer.
func (s *subscriber) line() ([]byte, error) {
	b, err := s.r.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, errors.New("protocol: line too long")
		}
		return nil, err
	}
	if len(b) < 2 || b[len(b)-2] != '\r' {
		return nil, errors.New("protocol: line without CRLF")
	}
	return b[:len(b)-2], nil
}

func (s *subscriber) intLine(prefix byte) (int, error) {
	l, err := s.line()
	if err != nil {
		return 0, err
	}
	if len(l) == 0 || l[0] != prefix {
		if len(l) > 0 && l[0] == '-' {
			return 0, fmt.Errorf("server: %s", l[1:])
		}
		return 0, fmt.Errorf("protocol: want %q, got %q", prefix, l)
	}
	n, err := strconv.Atoi(string(l[1:]))
	if err != nil || n < 0 {
		return 0, fmt.Errorf("protocol: bad length %q", l)
	}
	return n, nil
}

// bulk reads a bulk string of at most limit bytes as a view into the
// buffer, valid until the next read. Longer ones are read past and
// reported with their length.
func (s *subscriber) bulk(limit int) ([]byte, int, error) {
	n, err := s.intLine('$')
	if err != nil {
		return nil, 0, err
	}
	if n > limit || n+2 > s.r.Size() {
		// Read past it without holding it.
		if s.skip == nil {
			s.skip = make([]byte, 32<<10)
		}
		if _, err := io.CopyBuffer(io.Discard, io.LimitReader(s.r, int64(n)+2), s.skip); err != nil {
			return nil, n, err
		}
		return nil, n, nil
	}
	b, err := s.r.Peek(n + 2)
	if err != nil {
		return nil, n, err
	}
	if b[n] != '\r' || b[n+1] != '\n' {
		return nil, n, errors.New("protocol: bulk string without CRLF")
	}
	_, _ = s.r.Discard(n + 2)
	return b[:n], n, nil
}

// frame reads one push frame and returns its kind ("pmessage",
// "psubscribe", "pong", ...), for a message the channel and the payload,
// and for a pong its payload. The payload is a view valid until the next
// call. A channel name or payload over the limit is read past and
// returned as an *oversized error, with the connection still good.
func (s *subscriber) frame() (kind string, channel, payload []byte, err error) {
	n, err := s.intLine('*')
	if err != nil {
		return "", nil, nil, err
	}
	if n < 2 {
		return "", nil, nil, fmt.Errorf("protocol: push frame of %d elements", n)
	}
	k, _, err := s.bulk(32)
	if err != nil {
		return "", nil, nil, err
	}
	if n == 2 {
		// The answer to a PING while subscribed: ["pong", payload].
		p, _, err := s.bulk(64)
		if err != nil {
			return "", nil, nil, err
		}
		if string(k) == "pong" {
			return "pong", nil, p, nil
		}
		return string(k), nil, nil, nil
	}
	switch string(k) {
	case "pmessage":
		kind = "pmessage"
	case "smessage":
		kind = "smessage"
	case "psubscribe":
		kind = "psubscribe"
	case "ssubscribe":
		kind = "ssubscribe"
	default:
		kind = string(k)
	}
	if kind == "smessage" && n == 3 {
		return s.message(kind)
	}
	if kind == "sunsubscribe" {
		// The server took a channel away: its slot moved.
		ch, _, err := s.bulk(maxChannel)
		if err != nil {
			return "", nil, nil, err
		}
		s.channel = append(s.channel[:0], ch...)
		for i := 2; i < n; i++ {
			if err := s.skipElement(); err != nil {
				return "", nil, nil, err
			}
		}
		return kind, s.channel, nil, nil
	}
	if kind != "pmessage" || n != 4 {
		// Confirmations and anything else: read the rest and return.
		for i := 1; i < n; i++ {
			if err := s.skipElement(); err != nil {
				return "", nil, nil, err
			}
		}
		return kind, nil, nil, nil
	}
	if _, _, err := s.bulk(maxChannel); err != nil { // the pattern
		return "", nil, nil, err
	}
	return s.message(kind)
}

// maxChannel bounds a channel name the subscriber reads: far more than a
// heartbeat channel can be (a prefix and a service name of at most
// wire.MaxNameLength bytes).
const maxChannel = 1024

// message reads a message's channel and payload. Either too long is read
// past and reported as a malformed heartbeat: anyone allowed to publish
// can send one, and it must not cost the subscription.
func (s *subscriber) message(kind string) (string, []byte, []byte, error) {
	ch, chSize, err := s.bulk(maxChannel)
	if err != nil {
		return "", nil, nil, err
	}
	if ch != nil {
		s.channel = append(s.channel[:0], ch...)
	} else {
		s.channel = s.channel[:0]
	}
	payload, size, err := s.bulk(maxFrame)
	if err != nil {
		return "", nil, nil, err
	}
	switch {
	case ch == nil:
		return kind, s.channel, nil, &oversized{what: "channel name", size: chSize, limit: maxChannel}
	case payload == nil:
		return kind, s.channel, nil, &oversized{what: "message", size: size, limit: wire.MaxMessageSize}
	}
	return kind, s.channel, payload, nil
}

func (s *subscriber) skipElement() error {
	l, err := s.line()
	if err != nil {
		return err
	}
	if len(l) == 0 {
		return errors.New("protocol: empty line")
	}
	switch l[0] {
	case ':', '+', '-':
		return nil
	case '$':
		n, err := strconv.Atoi(string(l[1:]))
		if err != nil {
			return fmt.Errorf("protocol: bad length %q", l)
		}
		if n < 0 {
			return nil
		}
		_, err = s.r.Discard(n + 2)
		return err
	}
	return fmt.Errorf("protocol: unexpected %q", l)
}

// oversized is a publication too large to be a heartbeat; the connection
// is still good.
type oversized struct {
	what        string
	size, limit int
}

func (e *oversized) Error() string {
	return fmt.Sprintf("heartbeat: %s is %d bytes, more than the %d allowed", e.what, e.size, e.limit)
}
