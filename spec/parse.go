package spec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"sigs.k8s.io/yaml"
)

// MaxSpecBytes bounds a spec document; anything larger is surely not a release spec.
const MaxSpecBytes = 1 << 20

// Read reads a spec document from r, reading at most MaxSpecBytes+1 bytes, so an endless or huge input
// (/dev/zero, a runaway pipe) is refused instead of exhausting memory.
func Read(r io.Reader) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxSpecBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxSpecBytes {
		return nil, fmt.Errorf("spec is larger than the limit of %d bytes", MaxSpecBytes)
	}
	return data, nil
}

// tooLarge is the error of a spec of n bytes, over MaxSpecBytes.
func tooLarge(n int) error {
	return fmt.Errorf("spec is %d bytes, larger than the limit of %d bytes", n, MaxSpecBytes)
}

// CheckSize refuses a spec whose JSON form, which is what starting a workflow sends, is over MaxSpecBytes:
// the workflow would reject it anyway, after it was stored in history.
func (r Release) CheckSize() error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if len(b) > MaxSpecBytes {
		return tooLarge(len(b))
	}
	return nil
}

// Parse reads a release spec from YAML or JSON (JSON is YAML), rejecting unknown keys, and returns it as
// written: call WithDefaults and Validate before use.
func Parse(data []byte) (Release, error) {
	var r Release
	if len(data) > MaxSpecBytes {
		return r, tooLarge(len(data))
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return r, errors.New("spec is empty")
	}
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return r, fmt.Errorf("spec is neither valid YAML nor JSON: %v", err)
	}
	if !bytes.HasPrefix(bytes.TrimSpace(js), []byte("{")) {
		return r, errors.New("spec must be a mapping of keys (service, version, target, ...)")
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	if err := dec.Decode(&r); err != nil {
		return Release{}, explainDecodeError(err)
	}
	if r.decodeErr != nil {
		return Release{}, r.decodeErr
	}
	if dec.More() {
		return Release{}, errors.New("spec holds more than one document")
	}
	return r, nil
}

// UnmarshalJSON decodes a spec strictly without failing: an unknown key or a value of the wrong type is
// kept as a problem that Validate reports. A spec sent by the raw Temporal CLI is decoded by the SDK,
// which would otherwise drop a misspelt key silently (and a decoding error would stall the workflow task
// instead of rejecting the release).
func (r *Release) UnmarshalJSON(b []byte) error {
	if len(b) > MaxSpecBytes {
		// Not decoded at all: the bound is what keeps a huge spec from costing memory and time.
		*r = Release{decodeErr: tooLarge(len(b))}
		return nil
	}
	type plain Release
	var p plain
	lenientErr := json.Unmarshal(b, &p)
	*r = Release(p)
	if lenientErr != nil {
		r.decodeErr = explainDecodeError(lenientErr)
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var strict plain
	if err := dec.Decode(&strict); err != nil {
		r.decodeErr = explainDecodeError(err)
	}
	return nil
}

// explainDecodeError turns encoding/json's messages into ones that name the field the way the spec
// documentation does.
func explainDecodeError(err error) error {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		field := typeErr.Field
		if field == "" {
			field = "spec"
		}
		return fmt.Errorf("%s: want %s, got %s", field, typeName(typeErr.Type.String()), typeErr.Value)
	}
	msg := err.Error()
	if strings.HasPrefix(msg, "json: unknown field ") {
		return fmt.Errorf("unknown key %s (see docs/spec.md for the keys a spec takes)",
			strings.TrimPrefix(msg, "json: unknown field "))
	}
	return errors.New(strings.TrimPrefix(msg, "json: "))
}

func typeName(goType string) string {
	switch {
	case strings.HasPrefix(goType, "int"), strings.HasPrefix(goType, "float"):
		return "a number"
	case goType == "string":
		return "a string"
	case goType == "bool":
		return "true or false"
	case strings.HasPrefix(goType, "[]"):
		return "a list"
	default:
		return "a mapping"
	}
}
