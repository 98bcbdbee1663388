package flags

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// FlagdSchema is the JSON schema a new flag file declares, so editors validate it.
const FlagdSchema = "https://flagd.dev/schema/v0/flags.json"

// setFlagdFile read-modify-writes the flag file under an exclusive lock on a sidecar "<path>.lock" (the
// flag file itself is replaced by rename, so it cannot carry the lock). Readers such as flagd only ever
// see the old or the new complete file.
func setFlagdFile(ctx context.Context, path string, names []string, percent int) error {
	unlock, err := lockFile(ctx, path+".lock")
	if err != nil {
		return fmt.Errorf("lock flag file %s: %w", path, err)
	}
	defer unlock()

	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("read flag file %s: %w", path, err)
	}
	doc := map[string]json.RawMessage{}
	if len(bytes.TrimSpace(old)) > 0 {
		if err := json.Unmarshal(old, &doc); err != nil {
			return fmt.Errorf("%w: flag file %s is not a JSON object (%v); fix or remove it", ErrPermanent, path, err)
		}
	} else {
		doc["$schema"] = mustJSON(FlagdSchema)
	}
	all := map[string]json.RawMessage{}
	if raw, ok := doc["flags"]; ok && !isNull(raw) {
		if err := json.Unmarshal(raw, &all); err != nil {
			return fmt.Errorf("%w: flag file %s: \"flags\" is not an object (%v); fix or remove it", ErrPermanent, path, err)
		}
	}
	for _, name := range names {
		def := map[string]json.RawMessage{}
		if raw, ok := all[name]; ok && !isNull(raw) {
			if err := json.Unmarshal(raw, &def); err != nil {
				return fmt.Errorf("%w: flag file %s: flag %q is not an object (%v); fix or remove it", ErrPermanent, path, name, err)
			}
		}
		applyPercent(def, percent)
		all[name] = mustJSON(def)
	}
	doc["flags"] = mustJSON(all)

	out, err := encode(doc)
	if err != nil {
		return fmt.Errorf("encode flag file %s: %w", path, err)
	}
	if bytes.Equal(out, old) {
		return nil // already in this state: no write, no reload for flagd
	}
	mode := fs.FileMode(0o644)
	if st, err := os.Stat(path); err == nil {
		mode = st.Mode().Perm()
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("write flag file %s: %w", path, err)
	}
	return writeAtomic(path, out, mode)
}

// applyPercent sets a flag definition to percent, keeping keys Shepherd does not own (metadata, ...).
// A flag stays ENABLED even at 0 %: a DISABLED flagd flag makes clients fall back to their code default,
// which is not necessarily "off".
func applyPercent(def map[string]json.RawMessage, percent int) {
	def["state"] = mustJSON("ENABLED")
	def["variants"] = mustJSON(map[string]bool{"on": true, "off": false})
	switch percent {
	case 0:
		def["defaultVariant"] = mustJSON("off")
		delete(def, "targeting")
	case 100:
		def["defaultVariant"] = mustJSON("on")
		delete(def, "targeting")
	default:
		def["defaultVariant"] = mustJSON("off")
		// "on" first: flagd buckets the targeting key into [0,100) and walks the variants in order, so a
		// growing "on" share only ever adds users.
		def["targeting"] = mustJSON(map[string]any{
			"fractional": []any{[]any{"on", percent}, []any{"off", 100 - percent}},
		})
	}
}

// encode writes indented JSON with sorted keys and without HTML escaping, ending in a newline.
func encode(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// mustJSON encodes v compactly without HTML escaping, so strings in flags Shepherd does not own are
// written back byte for byte.
func mustJSON(v any) json.RawMessage {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(err) // only called with values that always encode
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

// writeAtomic replaces path with data: a temporary file in the same directory, fsync, rename, then fsync
// of the directory so the rename itself survives a crash.
func writeAtomic(path string, data []byte, mode fs.FileMode) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write flag file %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		return fmt.Errorf("write flag file %s: %w", path, err)
	}
	if err = tmp.Chmod(mode); err != nil {
		return fmt.Errorf("write flag file %s: %w", path, err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("write flag file %s: %w", path, err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("write flag file %s: %w", path, err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write flag file %s: %w", path, err)
	}
	if d, derr := os.Open(dir); derr == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}
