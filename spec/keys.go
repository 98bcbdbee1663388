package spec

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
)

// exactKeys checks that every key of the JSON document raw is a key of t, spelt exactly. Go's JSON
// decoding matches keys regardless of case, so `previousversion` would otherwise be taken for
// `previousVersion`; and a misspelt key deserves a suggestion. path names raw in messages.
func exactKeys(raw json.RawMessage, t reflect.Type, path string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		var m map[string]json.RawMessage
		if json.Unmarshal(raw, &m) != nil {
			return nil // not an object: the decoder reports the type
		}
		fields := map[string]reflect.Type{}
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if !f.IsExported() || name == "-" || name == "" {
				continue
			}
			fields[name] = f.Type
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			ft, ok := fields[k]
			if !ok {
				return unknownKey(path, k, fields)
			}
			if err := exactKeys(m[k], ft, joinPath(path, k)); err != nil {
				return err
			}
		}
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return nil // raw bytes (json.RawMessage)
		}
		var items []json.RawMessage
		if json.Unmarshal(raw, &items) != nil {
			return nil
		}
		for i, it := range items {
			if err := exactKeys(it, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	case reflect.Map:
		var m map[string]json.RawMessage
		if json.Unmarshal(raw, &m) != nil {
			return nil
		}
		for k, v := range m {
			if err := exactKeys(v, t.Elem(), joinPath(path, k)); err != nil {
				return err
			}
		}
	}
	return nil
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// unknownKey names the key, where it is, and the key it was probably meant to be.
func unknownKey(path, key string, fields map[string]reflect.Type) error {
	where := ""
	if path != "" {
		where = " in " + path
	}
	at := joinPath(path, key)
	best, bestDist := "", 3
	for name := range fields {
		if strings.EqualFold(name, key) {
			return &KeyError{Path: at, msg: fmt.Sprintf("unknown key %q%s: keys are case-sensitive; did you mean %q? (docs/spec.md)", key, where, name)}
		}
		if d := editDistance(strings.ToLower(name), strings.ToLower(key)); d < bestDist || (d == bestDist && name < best) {
			best, bestDist = name, d
		}
	}
	if best != "" {
		return &KeyError{Path: at, msg: fmt.Sprintf("unknown key %q%s; did you mean %q? (docs/spec.md)", key, where, best)}
	}
	return &KeyError{Path: at, msg: fmt.Sprintf("unknown key %q%s (see docs/spec.md for the keys a spec takes)", key, where)}
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
