package alerting

import (
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
)

// The file is read by walking its YAML nodes into the schema's types,
// which the reader sees as ordinary structs with yaml tags: a struct is a
// mapping whose keys are its tags (an unknown key is an error listing the
// known ones), a slice a list (or one value without brackets), a map a
// mapping, and a leaf a scalar whose type reads itself (scalar). A
// struct that must check its fields together is a checker. Every error
// names the file, the line and the key, and reading goes on after one, so
// that a file's mistakes are listed at once.

// scalar is a leaf type of the schema that reads itself from a YAML
// scalar, saying what it wants when the text is not that.
type scalar interface {
	readScalar(s string) error
}

// checker is a schema struct that checks its fields together once read;
// a fieldError names the field by its key.
type checker interface {
	check() []fieldError
}

type fieldError struct {
	key string // the field's yaml key
	err error
}

// reader walks one document and collects its errors.
type reader struct {
	name string
	errs []error
}

func (r *reader) fail(n *yaml.Node, key, format string, args ...any) {
	r.errs = append(r.errs, fmt.Errorf("%s line %d: %s: %s", r.name, n.Line, showKey(key), fmt.Sprintf(format, args...)))
}

// showKey is a key path as an error shows it: as written when it is
// printable ASCII, else escaped (a key is the file's data, and an error
// reaches a terminal), cut to 200 bytes, and cut at a '?' or '#': a URL
// written where a key goes may carry a token in its query.
func showKey(key string) string {
	key = wire.Truncate(key, 200)
	if i := strings.IndexAny(key, "?#"); i >= 0 {
		key = key[:i] + "?..."
	}
	for i := 0; i < len(key); i++ {
		if key[i] < ' ' || key[i] > '~' {
			q := strconv.QuoteToASCII(key)
			return q[1 : len(q)-1]
		}
	}
	return key
}

// show is a node as an error shows it: a scalar quoted and cut, else its
// kind.
func show(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode {
		return strconv.Quote(wire.Truncate(n.Value, 64))
	}
	return map[yaml.Kind]string{yaml.MappingNode: "a mapping", yaml.SequenceNode: "a list", yaml.AliasNode: "an alias"}[n.Kind]
}

func join(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

var scalarType = reflect.TypeFor[scalar]()

// A pairScalar is a scalar whose text holds ": ", so that written
// unquoted in a list YAML reads it as a one-pair mapping: joinPair puts
// the text back together.
type pairScalar interface {
	scalar
	joinPair(key, value string) string
}

// read reads node n into v (addressable), at key.
func (r *reader) read(n *yaml.Node, v reflect.Value, key string) {
	if n.Tag == "!!null" && n.Kind == yaml.ScalarNode && v.Kind() != reflect.String {
		return // an empty value: the default
	}
	if v.Addr().Type().Implements(scalarType) {
		if p, ok := v.Addr().Interface().(pairScalar); ok && n.Kind == yaml.MappingNode && len(n.Content) == 2 &&
			n.Content[0].Kind == yaml.ScalarNode && n.Content[1].Kind == yaml.ScalarNode {
			// "- svc: cond" unquoted is YAML's one-pair mapping.
			if err := p.readScalar(p.joinPair(n.Content[0].Value, n.Content[1].Value)); err != nil {
				r.fail(n, key, "%v", err)
			}
			return
		}
		if n.Kind != yaml.ScalarNode {
			r.fail(n, orTop(key), "want a value, got %s", show(n))
			return
		}
		if err := v.Addr().Interface().(scalar).readScalar(n.Value); err != nil {
			r.fail(n, key, "%v", err)
		}
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		r.mapping(n, v, key)
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		r.read(n, v.Elem(), key)
	case reflect.Slice:
		items := []*yaml.Node{n} // one value without brackets
		switch {
		case n.Kind == yaml.SequenceNode:
			items = n.Content
		case n.Kind != yaml.ScalarNode:
			r.fail(n, key, "want a list, got %s", show(n))
			return
		}
		for i, item := range items {
			if item.Tag == "!!null" && item.Kind == yaml.ScalarNode && n.Kind == yaml.SequenceNode {
				r.fail(item, fmt.Sprintf("%s[%d]", key, i), "an empty item: write a value or leave the item out")
				continue
			}
			e := reflect.New(v.Type().Elem()).Elem()
			before := len(r.errs)
			r.read(item, e, fmt.Sprintf("%s[%d]", key, i))
			if len(r.errs) == before {
				v.Set(reflect.Append(v, e))
			}
		}
	case reflect.Map:
		r.mapOf(n, v, key)
	case reflect.Bool:
		switch {
		case n.Kind == yaml.ScalarNode && n.Value == "true":
			v.SetBool(true)
		case n.Kind == yaml.ScalarNode && n.Value == "false":
			v.SetBool(false)
		default:
			r.fail(n, key, "want true or false, got %s", show(n))
		}
	default:
		r.fail(n, key, "cannot be read (%s)", v.Type())
	}
}

// mapping reads a mapping into a struct by its fields' yaml tags (inline
// structs included), then lets the struct check itself.
func (r *reader) mapping(n *yaml.Node, v reflect.Value, key string) {
	if n.Kind != yaml.MappingNode {
		r.fail(n, orTop(key), "want a mapping, got %s", show(n))
		return
	}
	fields := map[string]reflect.Value{}
	collectFields(v, fields)
	lines := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		full := join(key, k.Value)
		f, ok := fields[k.Value]
		switch {
		case !ok:
			known := make([]string, 0, len(fields))
			for name := range fields {
				known = append(known, name)
			}
			sort.Strings(known)
			r.fail(k, full, "unknown key (known here: %s)", strings.Join(known, ", "))
		case lines[k.Value] != nil:
			r.fail(k, full, "given twice")
		default:
			lines[k.Value] = k
			r.read(val, f, full)
		}
	}
	if c, ok := v.Addr().Interface().(checker); ok {
		for _, fe := range c.check() {
			at := n
			if l := lines[fe.key]; l != nil {
				at = l
			}
			r.fail(at, join(key, fe.key), "%v", fe.err)
		}
	}
}

func collectFields(v reflect.Value, into map[string]reflect.Value) {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		tag, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		switch {
		case opts == "inline":
			collectFields(v.Field(i), into)
		case tag != "" && tag != "-" && f.IsExported():
			into[tag] = v.Field(i)
		}
	}
}

// mapOf reads a mapping into a map whose keys and values are scalars of
// the schema: each key reads itself, and a key given twice is an error.
func (r *reader) mapOf(n *yaml.Node, v reflect.Value, key string) {
	if n.Kind != yaml.MappingNode {
		r.fail(n, key, "want a mapping, got %s", show(n))
		return
	}
	if v.IsNil() {
		v.Set(reflect.MakeMap(v.Type()))
	}
	var seen []string
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		full := join(key, k.Value)
		mk := reflect.New(v.Type().Key()).Elem()
		before := len(r.errs)
		r.read(k, mk, full)
		if len(r.errs) > before {
			continue
		}
		if slices.Contains(seen, k.Value) {
			r.fail(k, full, "given twice")
			continue
		}
		seen = append(seen, k.Value)
		mv := reflect.New(v.Type().Elem()).Elem()
		r.read(val, mv, full)
		if len(r.errs) == before {
			v.SetMapIndex(mk, mv)
		}
	}
}

func orTop(key string) string {
	if key == "" {
		return "the document"
	}
	return key
}
