package spec

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// KeyError is a problem with one key of a spec document (an unknown or misspelt key, a value of the wrong
// type), named by its key path as the documentation writes it: stages[0].soak.
type KeyError struct {
	// Path is the key's path, "" when the problem is with the document as a whole.
	Path string
	msg  string
}

func (e *KeyError) Error() string { return e.msg }

// Position is a place in a spec document, 1-based, as editors count.
type Position struct{ Line, Column int }

func (p Position) String() string { return fmt.Sprintf("line %d, column %d", p.Line, p.Column) }

// Locate finds a key path (stages[1].percent, analysis.checks[0].name, spec) in a YAML or JSON document:
// the position of its last key, or of the list item when the path ends with an index. It reports false
// when the document does not hold the path (a default, or a key the path's parent lacks).
func Locate(data []byte, path string) (Position, bool) {
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil || len(doc.Content) == 0 {
		return Position{}, false
	}
	n := doc.Content[0]
	var at *yaml.Node
	for _, seg := range splitPath(path) {
		switch {
		case seg.index >= 0:
			if n.Kind != yaml.SequenceNode || seg.index >= len(n.Content) {
				return Position{}, false
			}
			n = n.Content[seg.index]
			at = n
		default:
			if n.Kind != yaml.MappingNode {
				return Position{}, false
			}
			found := false
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == seg.key {
					at, n, found = n.Content[i], n.Content[i+1], true
					break
				}
			}
			if !found {
				return Position{}, false
			}
		}
	}
	if at == nil {
		return Position{}, false
	}
	return Position{Line: at.Line, Column: at.Column}, true
}

type pathSeg struct {
	key   string
	index int // -1 for a key
}

// splitPath reads "stages[1].percent" as stages, [1], percent.
func splitPath(path string) []pathSeg {
	var out []pathSeg
	for _, part := range strings.Split(path, ".") {
		key, rest, _ := strings.Cut(part, "[")
		if key != "" {
			out = append(out, pathSeg{key: key, index: -1})
		}
		for rest != "" {
			num, after, _ := strings.Cut(rest, "]")
			i, err := strconv.Atoi(num)
			if err != nil {
				break
			}
			out = append(out, pathSeg{index: i})
			_, rest, _ = strings.Cut(after, "[")
		}
	}
	return out
}

// WithPosition prefixes err with where in data its key is ("line 5, column 30: ..."), when err is a
// *KeyError whose key the document holds; otherwise it returns err unchanged.
func WithPosition(data []byte, err error) error {
	var ke *KeyError
	if errors.As(err, &ke) && ke.Path != "" {
		if p, ok := Locate(data, ke.Path); ok {
			return fmt.Errorf("%s: %w", p, err)
		}
	}
	return err
}

// typeErrorAt finds the first value in raw that does not decode into its field of t and returns its path
// with the decoding error; "" when none is found (the error is then about raw as a whole).
func typeErrorAt(raw json.RawMessage, t reflect.Type, path string) (string, error) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(reflect.TypeFor[json.Unmarshaler]()) {
		if err := json.Unmarshal(raw, reflect.New(t).Interface()); err != nil {
			return path, err
		}
		return "", nil
	}
	switch t.Kind() {
	case reflect.Struct:
		var m map[string]json.RawMessage
		if json.Unmarshal(raw, &m) != nil {
			break
		}
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if v, ok := m[name]; ok && f.IsExported() && name != "-" && name != "" {
				if p, err := typeErrorAt(v, f.Type, joinPath(path, name)); err != nil {
					return p, err
				}
			}
		}
		return "", nil
	case reflect.Slice, reflect.Array:
		var items []json.RawMessage
		if t.Elem().Kind() == reflect.Uint8 || json.Unmarshal(raw, &items) != nil {
			break
		}
		for i, it := range items {
			if p, err := typeErrorAt(it, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return p, err
			}
		}
		return "", nil
	case reflect.Map:
		var m map[string]json.RawMessage
		if json.Unmarshal(raw, &m) != nil {
			break
		}
		for k, v := range m {
			if p, err := typeErrorAt(v, t.Elem(), joinPath(path, k)); err != nil {
				return p, err
			}
		}
		return "", nil
	}
	if err := json.Unmarshal(raw, reflect.New(t).Interface()); err != nil {
		return path, err
	}
	return "", nil
}
