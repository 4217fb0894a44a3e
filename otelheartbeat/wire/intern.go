package wire

// Interner is what a decoder keeps from one message to the next. It hands
// out one shared string for bytes it has seen before, so that a decoder
// reading the same service names, field keys and states in every heartbeat
// of a fleet does not allocate them each time; it holds at most its bound
// of strings, and past that allocates as usual. And it holds the room a
// message's fields are gathered in, so that a message decoded without room
// of its own gets its fields in one allocation of their number. It is not
// safe for concurrent use.
type Interner struct {
	m      map[string]string
	max    int
	fields []Field
	// services are the service names that passed ValidateServiceName
	// (as many as max): a fleet's names are checked once, not in every
	// heartbeat.
	services map[string]string
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

// serviceName returns b as a service name, shared when seen before, or
// why it cannot be one.
func (in *Interner) serviceName(b []byte) (string, error) {
	if in != nil {
		if s, ok := in.services[string(b)]; ok {
			return s, nil
		}
	}
	name := in.String(b)
	if err := ValidateServiceName(name); err != nil {
		return "", err
	}
	if in != nil && len(b) <= maxInterned && len(in.services) < in.max {
		if in.services == nil {
			in.services = make(map[string]string)
		}
		in.services[name] = name
	}
	return name, nil
}

// UnmarshalIntern is UnmarshalInto that takes service names, field keys
// and short string values from in. A message without room for fields
// (its Fields nil, or of no capacity) gets them in one allocation of
// exactly their number, gathered in in's room.
func UnmarshalIntern(data []byte, m *Message, in *Interner) error {
	gather := in != nil && cap(m.Fields) == 0
	fields := m.Fields[:0]
	if gather {
		if in.fields == nil {
			// Room for every field a message may have: it never grows,
			// so nothing of a message is left in room given up.
			in.fields = make([]Field, 0, MaxFields)
		}
		fields = in.fields[:0]
	}
	*m = Message{Fields: fields}
	if len(data) > MaxMessageSize {
		if gather {
			m.Fields = nil
		}
		return decodeErr("", "message is %d bytes, more than the %d allowed", len(data), MaxMessageSize)
	}
	d := decoder{s: scanner{data: data}, m: m, intern: in}
	err := d.object()
	if gather {
		room := m.Fields
		m.Fields = nil
		if err == nil && len(room) > 0 {
			m.Fields = append(make([]Field, 0, len(room)), room...)
		}
		clear(room) // its strings and bytes are the message's now, or garbage
		in.fields = room[:0]
	}
	return err
}
