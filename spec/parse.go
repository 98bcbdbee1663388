package spec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
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
		return Release{}, WithPosition(data, r.decodeErr)
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
	b, legacy := liftLegacy(b)
	var p plain
	lenientErr := json.Unmarshal(b, &p)
	*r = Release(p)
	r.legacy = legacy
	if lenientErr != nil {
		r.decodeErr = explainDecodeError(lenientErr)
		if path, err := typeErrorAt(b, reflect.TypeOf(p), ""); err != nil && path != "" {
			r.decodeErr = &KeyError{Path: path, msg: path + ": " + strings.TrimPrefix(explainDecodeError(err).Error(), "spec: ")}
		}
		return nil
	}
	if err := exactKeys(b, reflect.TypeOf(p), ""); err != nil {
		r.decodeErr = err
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

// liftLegacy takes out of a spec the sections written in the shape of specs before named providers,
// where the spec carried provider settings itself (an inline target with its commands, Prometheus
// addresses and credential names, webhook URLs, flag provider and precheck settings, a repository path),
// and returns a problem for each that says what to write instead. Each section is replaced by its new
// shape with an empty name, so the spec keeps its structure (as many channels, prechecks, ...): such a spec
// is invalid, and Release.AcceptLegacy exists only so that releases started by older code replay as they
// ran.
func liftLegacy(b []byte) ([]byte, []FieldError) {
	var m map[string]json.RawMessage
	if json.Unmarshal(b, &m) != nil {
		return b, nil
	}
	var problems []FieldError
	lift := func(path, msg string) { problems = append(problems, FieldError{Path: path, Message: msg}) }
	isObject := func(raw json.RawMessage) bool { return bytes.HasPrefix(bytes.TrimSpace(raw), []byte("{")) }
	object := func(raw json.RawMessage) map[string]json.RawMessage {
		var o map[string]json.RawMessage
		if !isObject(raw) || json.Unmarshal(raw, &o) != nil {
			return nil
		}
		return o
	}
	empty := json.RawMessage(`""`)
	if t, ok := m["target"]; ok && isObject(t) {
		lift("target", "a spec no longer describes its target (type, commands, controller): name one of the "+
			"worker configuration's targets, e.g. target: checkout-prod")
		m["target"] = empty
	}
	if a := object(m["analysis"]); a != nil {
		if _, ok := a["prometheus"]; ok {
			lift("analysis.prometheus", "a spec no longer gives metrics addresses or credentials: name one of "+
				"the worker configuration's metrics sources with analysis.source")
			delete(a, "prometheus")
			m["analysis"], _ = json.Marshal(a)
		}
	}
	var notes []json.RawMessage
	if json.Unmarshal(m["notifications"], &notes) == nil {
		changed := false
		for i, n := range notes {
			if isObject(n) {
				lift(fmt.Sprintf("notifications[%d]", i), "a spec no longer gives webhook URLs: name a channel of the "+
					"worker configuration's notifications")
				notes[i], changed = empty, true
			}
		}
		if changed {
			m["notifications"], _ = json.Marshal(notes)
		}
	}
	if f := object(m["flags"]); f != nil && isObject(f["provider"]) {
		lift("flags.provider", "a spec no longer configures its flag provider: name one of the worker "+
			"configuration's flags")
		f["provider"] = empty
		m["flags"], _ = json.Marshal(f)
	}
	var checks []json.RawMessage
	if json.Unmarshal(m["prechecks"], &checks) == nil {
		changed := false
		for i, c := range checks {
			o := object(c)
			if o == nil {
				continue
			}
			for _, k := range []string{"http", "exec", "prometheus"} {
				if _, ok := o[k]; !ok {
					continue
				}
				lift(fmt.Sprintf("prechecks[%d]", i), "a spec no longer describes what a check runs ("+k+"): name "+
					"a check of the worker configuration's prechecks with check, or give a metric")
				delete(o, k)
				o["check"], changed = empty, true
			}
			checks[i], _ = json.Marshal(o)
		}
		if changed {
			m["prechecks"], _ = json.Marshal(checks)
		}
	}
	if t := object(m["tag"]); t != nil {
		var repo string
		_ = json.Unmarshal(t["repo"], &repo)
		_, push := t["push"]
		_, remote := t["remote"]
		_, ref := t["ref"]
		_, timeout := t["timeout"]
		if push || remote || ref || timeout || strings.Contains(repo, "/") {
			lift("tag", "a spec no longer configures its repository (path, push, remote, ref): name one of the "+
				"worker configuration's repositories with tag.repo")
			m["tag"], _ = json.Marshal(map[string]json.RawMessage{"repo": empty, "name": t["name"]})
		}
	}
	if problems == nil {
		return b, nil
	}
	out, err := json.Marshal(m)
	if err != nil {
		return b, nil
	}
	return out, problems
}

// AcceptLegacy returns r with the problems of a legacy shape (see liftLegacy) ignored. Only the workflow
// uses it, for releases started by code older than named providers, so that their histories replay.
func (r Release) AcceptLegacy() Release {
	r.legacyAccepted = true
	return r
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
