package wire

// Interner hands out one shared string for bytes it has seen before, so
// that a decoder reading the same service names, field keys and states in
// every heartbeat of a fleet does not allocate them each time. It holds at
// most its bound of strings; past that it allocates as usual. It is not
// safe for concurrent use.
type Interner struct {
	m   map[string]string
	max int
}

// NewInterner returns an interner holding at most max strings.
func NewInterner(max int) *Interner {
	return &Interner{m: make(map[string]string), max: max}
}

// maxInterned bounds the length of a string worth interning.
const maxInterned = 64

// String returns b as a string, shared when seen before.
func (in *Interner) String(b []byte) string {
	if in == nil || len(b) > maxInterned {
		return string(b)
	}
	if s, ok := in.m[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(in.m) < in.max {
		in.m[s] = s
	}
	return s
}

// UnmarshalIntern is UnmarshalInto that takes service names, field keys
// and short string values from in.
func UnmarshalIntern(data []byte, m *Message, in *Interner) error {
	*m = Message{Fields: m.Fields[:0]}
	if len(data) > MaxMessageSize {
		return decodeErr("", "message is %d bytes, more than the %d allowed", len(data), MaxMessageSize)
	}
	d := decoder{s: scanner{data: data}, m: m, intern: in}
	return d.object()
}
