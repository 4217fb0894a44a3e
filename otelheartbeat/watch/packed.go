package watch

import (
	"encoding/binary"
	"math"
	"math/bits"
	"time"
	"unsafe"

	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
)

// A kept heartbeat is held packed: one allocation of bytes, without
// pointers for the garbage collector to follow, of what the instance's
// entry does not already hold. The names, the Has bits and the counted
// values (heartbeat_count, uptime, memory, CPU) are the entry's own, set
// from the same heartbeat; the packed bytes hold the rest:
//
//	flags     1 byte: packedTimestamp, packedAddress, packedStatus*
//	timestamp varint Unix seconds, uvarint nanoseconds (packedTimestamp)
//	interval  8 bytes, float64 bits (wire.HasInterval)
//	status    uvarint length and bytes (packedStatusOther)
//	address   uvarint length and bytes (packedAddress)
//	fields    uvarint count, then each: uvarint length and key bytes,
//	          one kind byte, and the value its kind names: a varint
//	          (KindInt), 8 bytes of float64 bits (KindFloat), uvarint
//	          length and bytes (KindString, KindRaw), varint seconds and
//	          uvarint nanoseconds (KindTime; the kind byte's
//	          packedZeroTime bit for the zero time), nothing (no kind).
//
// The original design's heartbeat, three service fields, packs into
// about 90 bytes; as a wire.Message it held about 500 in four
// allocations.
//
// The entry holds only a pointer to them, 8 bytes rather than a string's
// 16: the bytes begin with their length, a uvarint. Packed bytes are
// never changed once made, so every copy of an Instance shares them, and
// so do the strings unpacked from them.
type packed struct{ p *byte }

// makePacked returns b packed: a copy in one allocation, after its length.
func makePacked(b []byte) packed {
	buf := make([]byte, packedSize(len(b)))
	head := binary.PutUvarint(buf, uint64(len(b)))
	copy(buf[head:], b)
	return packed{&buf[0]}
}

// size is the bytes p holds, its length included: what the tracker
// counts of it.
func (p packed) size() int {
	if p.p == nil {
		return 0
	}
	return packedSize(len(p.bytes()))
}

// packedSize is the bytes makePacked allocates for n.
func packedSize(n int) int {
	return (bits.Len64(uint64(n)|1)+6)/7 + n // the length's uvarint, and the bytes
}

// bytes returns the packed bytes, or "" for none.
func (p packed) bytes() string {
	if p.p == nil {
		return ""
	}
	// The length read a byte at a time: binary.Uvarint would need a slice
	// of ten bytes, which may reach past a short allocation.
	var n uint64
	at := 0
	for shift := uint(0); ; shift += 7 {
		c := *(*byte)(unsafe.Add(unsafe.Pointer(p.p), at))
		at++
		n |= uint64(c&0x7f) << shift
		if c < 0x80 {
			break
		}
	}
	return unsafe.String((*byte)(unsafe.Add(unsafe.Pointer(p.p), at)), int(n))
}

// maxKeptStatus bounds a status other than the wire's two (only a
// heartbeat given to Observe by hand carries one): what is kept past the
// budget is bounded whatever the heartbeat.
const maxKeptStatus = 32

const (
	packedTimestamp byte = 1 << iota
	packedAddress
	packedStatusRunning
	packedStatusStopping
	packedStatusOther

	packedZeroTime = 0x80 // on a KindTime field's kind byte
)

// packHead appends what packed bytes hold of m before its service
// fields; the fields follow, as a count and each packed by packField.
func packHead(dst []byte, m *wire.Message) []byte {
	var flags byte
	if !m.Timestamp.IsZero() {
		flags |= packedTimestamp
	}
	if m.InstanceAddress != "" && len(m.InstanceAddress) <= wire.MaxAddressLength {
		flags |= packedAddress
	}
	switch m.Status {
	case "":
	case wire.StatusRunning:
		flags |= packedStatusRunning
	case wire.StatusStopping:
		flags |= packedStatusStopping
	default:
		flags |= packedStatusOther
	}
	dst = append(dst, flags)
	if flags&packedTimestamp != 0 {
		dst = appendTime(dst, m.Timestamp)
	}
	if m.Has&wire.HasInterval != 0 {
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(m.IntervalSeconds))
	}
	if flags&packedStatusOther != 0 {
		dst = appendBytes(dst, wire.Truncate(m.Status, maxKeptStatus))
	}
	if flags&packedAddress != 0 {
		dst = appendBytes(dst, m.InstanceAddress)
	}
	return dst
}

// packField appends one service field, its string value (KindString)
// followed by more: what keep marks a cut string with.
func packField(dst []byte, key string, v *wire.Value, more string) []byte {
	dst = appendBytes(dst, key)
	switch v.Kind {
	case wire.KindInt:
		dst = append(dst, byte(v.Kind))
		dst = binary.AppendVarint(dst, v.Int)
	case wire.KindFloat:
		dst = append(dst, byte(v.Kind))
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(v.Float))
	case wire.KindString:
		dst = append(dst, byte(v.Kind))
		dst = binary.AppendUvarint(dst, uint64(len(v.Str)+len(more)))
		dst = append(append(dst, v.Str...), more...)
	case wire.KindTime:
		if v.Time.IsZero() {
			dst = append(dst, byte(v.Kind)|packedZeroTime)
			break
		}
		dst = append(dst, byte(v.Kind))
		dst = appendTime(dst, v.Time)
	case wire.KindRaw:
		dst = append(dst, byte(v.Kind))
		dst = appendBytes(dst, v.Raw)
	default: // no kind: nothing a reader can use
		dst = append(dst, 0)
	}
	return dst
}

func appendBytes[S ~string | ~[]byte](dst []byte, s S) []byte {
	return append(binary.AppendUvarint(dst, uint64(len(s))), s...)
}

func appendTime(dst []byte, t time.Time) []byte {
	return binary.AppendUvarint(binary.AppendVarint(dst, t.Unix()), uint64(t.Nanosecond()))
}

// unpack returns the heartbeat kept by the instance in, the one b holds
// the rest of. Its strings share b's bytes; its raw values are copies, so
// that a reader who changes one changes nobody else's. It returns nil for
// bytes the packing functions did not make.
func unpack(b string, in *Instance) *wire.Message {
	r := unpacker{b: unsafe.Slice(unsafe.StringData(b), len(b))}
	flags := r.readByte()
	m := &wire.Message{
		ServiceName: in.Service, InstanceID: in.Instance, Has: in.Has,
		UptimeSeconds: in.UptimeSeconds, HeartbeatCount: in.Count, MemoryUsageMB: in.MemoryMB, CPUUsagePercent: in.CPUPercent,
	}
	if flags&packedTimestamp != 0 {
		m.Timestamp = r.readTime()
	}
	if m.Has&wire.HasInterval != 0 {
		m.IntervalSeconds = r.readFloat()
	}
	switch {
	case flags&packedStatusRunning != 0:
		m.Status = wire.StatusRunning
	case flags&packedStatusStopping != 0:
		m.Status = wire.StatusStopping
	case flags&packedStatusOther != 0:
		m.Status = r.readString()
	}
	if flags&packedAddress != 0 {
		m.InstanceAddress = r.readString()
	}
	n := r.readUvarint()
	if n > uint64(len(r.b)) { // each field takes a byte at least
		r.fail()
	} else if n > 0 {
		m.Fields = make([]wire.Field, 0, n)
	}
	for range min(n, uint64(cap(m.Fields))) {
		f := wire.Field{Key: r.readString()}
		kind := r.readByte()
		f.Value.Kind = wire.Kind(kind &^ packedZeroTime)
		switch f.Value.Kind {
		case wire.KindInt:
			f.Value.Int = r.readVarint()
		case wire.KindFloat:
			f.Value.Float = r.readFloat()
		case wire.KindString:
			f.Value.Str = r.readString()
		case wire.KindTime:
			if kind&packedZeroTime == 0 {
				f.Value.Time = r.readTime()
			}
		case wire.KindRaw:
			f.Value.Raw = []byte(r.readString())
		}
		if r.bad {
			break
		}
		m.Fields = append(m.Fields, f)
	}
	if r.bad || len(r.b) != 0 {
		return nil
	}
	return m
}

// unpacker reads packed bytes, viewed as a slice that is never written;
// a read past their end sets bad and reads zero.
type unpacker struct {
	b   []byte
	bad bool
}

func (r *unpacker) fail() {
	r.bad, r.b = true, nil
}

func (r *unpacker) readByte() byte {
	if len(r.b) == 0 {
		r.fail()
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

// skip passes the n bytes encoding/binary read, and fails for n <= 0 (too
// few bytes, or a varint past 64 bits): it reports whether it passed.
func (r *unpacker) skip(n int) bool {
	if n <= 0 {
		r.fail()
		return false
	}
	r.b = r.b[n:]
	return true
}

func (r *unpacker) readUvarint() uint64 {
	if v, n := binary.Uvarint(r.b); r.skip(n) {
		return v
	}
	return 0
}

func (r *unpacker) readVarint() int64 {
	if v, n := binary.Varint(r.b); r.skip(n) {
		return v
	}
	return 0
}

func (r *unpacker) readFloat() float64 {
	if len(r.b) < 8 {
		r.fail()
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(r.b))
	r.b = r.b[8:]
	return v
}

// readString returns the next string, sharing the packed bytes.
func (r *unpacker) readString() string {
	n := r.readUvarint()
	if n > uint64(len(r.b)) {
		r.fail()
		return ""
	}
	v := unsafe.String(unsafe.SliceData(r.b), int(n))
	r.b = r.b[n:]
	return v
}

func (r *unpacker) readTime() time.Time {
	sec := r.readVarint()
	nsec := r.readUvarint()
	if r.bad || nsec >= 1e9 {
		r.fail()
		return time.Time{}
	}
	return time.Unix(sec, int64(nsec)).UTC()
}
