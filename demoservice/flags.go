package demoservice

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// flagNewCheckout is the flag the demo reports on every response.
const flagNewCheckout = "new-checkout"

// flagdFile is the subset of flagd's flag-definition format the demo understands: per flag a state, boolean
// variants, a default variant and optionally a top-level "fractional" targeting rule. Anything else in
// "targeting" (if/in/sem_ver, $evaluators) is ignored and the default variant applies.
type flagdFile struct {
	Flags map[string]flagdFlag `json:"flags"`
}

type flagdFlag struct {
	State          string                     `json:"state"`
	Variants       map[string]json.RawMessage `json:"variants"`
	DefaultVariant string                     `json:"defaultVariant"`
	Targeting      map[string]json.RawMessage `json:"targeting"`
}

// flag is one flag compiled for evaluation.
type flag struct {
	enabled   bool
	defaultOn bool
	buckets   []bucket // from a fractional rule; empty means the default variant applies
	total     float64
}

type bucket struct {
	on     bool
	weight float64
}

// evaluate reports whether the flag is on for the request id key. Fractional rollouts hash flag name and
// key with FNV-1a, so one request id always lands in the same bucket; the buckets are not bit-compatible
// with flagd's murmur3 bucketing.
func (f flag) evaluate(name, key string) bool {
	if !f.enabled {
		return false
	}
	if len(f.buckets) == 0 || f.total <= 0 {
		return f.defaultOn
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(name + key))
	x := float64(h.Sum32()) / (1 << 32) * f.total
	for _, b := range f.buckets {
		if x < b.weight {
			return b.on
		}
		x -= b.weight
	}
	return f.buckets[len(f.buckets)-1].on
}

// share is the fraction of requests for which the flag is on, exported as demo_feature_enabled.
func (f flag) share() float64 {
	switch {
	case !f.enabled:
		return 0
	case len(f.buckets) == 0 || f.total <= 0:
		if f.defaultOn {
			return 1
		}
		return 0
	}
	var on float64
	for _, b := range f.buckets {
		if b.on {
			on += b.weight
		}
	}
	return on / f.total
}

// parseFlags compiles a flagd JSON document. A variant is "on" when its value is JSON true.
func parseFlags(data []byte) (map[string]flag, error) {
	var doc flagdFile
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("not flagd JSON: %w", err)
	}
	out := make(map[string]flag, len(doc.Flags))
	for name, def := range doc.Flags {
		on := func(variant string) (bool, error) {
			v, ok := def.Variants[variant]
			if !ok {
				return false, fmt.Errorf("flag %q: variant %q is not among its variants", name, variant)
			}
			return bytes.Equal(bytes.TrimSpace(v), []byte("true")), nil
		}
		f := flag{enabled: def.State == "ENABLED"}
		if def.DefaultVariant != "" {
			v, err := on(def.DefaultVariant)
			if err != nil {
				return nil, err
			}
			f.defaultOn = v
		}
		if raw, ok := def.Targeting["fractional"]; ok {
			var parts []json.RawMessage
			if err := json.Unmarshal(raw, &parts); err != nil {
				return nil, fmt.Errorf("flag %q: fractional must be an array: %w", name, err)
			}
			for _, p := range parts {
				var entry []json.RawMessage
				if json.Unmarshal(p, &entry) != nil || len(entry) == 0 {
					continue // the optional bucketing expression; the demo always buckets by request id
				}
				var variant string
				if err := json.Unmarshal(entry[0], &variant); err != nil {
					return nil, fmt.Errorf("flag %q: fractional entry %s: want [\"variant\", weight]", name, p)
				}
				weight := 1.0
				if len(entry) > 1 {
					if err := json.Unmarshal(entry[1], &weight); err != nil || weight < 0 {
						return nil, fmt.Errorf("flag %q: fractional entry %s: weight must be a non-negative number", name, p)
					}
				}
				v, err := on(variant)
				if err != nil {
					return nil, err
				}
				f.buckets = append(f.buckets, bucket{on: v, weight: weight})
				f.total += weight
			}
		}
		out[name] = f
	}
	return out, nil
}

// flagWatcher holds the current flags, re-read from a file, and mirrors them into the gauge.
type flagWatcher struct {
	path  string
	gauge *prometheus.GaugeVec
	log   *slog.Logger
	cur   atomic.Pointer[map[string]flag]
}

func newFlagWatcher(path string, gauge *prometheus.GaugeVec, log *slog.Logger) *flagWatcher {
	return &flagWatcher{path: path, gauge: gauge, log: log}
}

func (fw *flagWatcher) enabled(name, key string) bool {
	m := fw.cur.Load()
	if m == nil {
		return false
	}
	return (*m)[name].evaluate(name, key)
}

// reload reads the file. A missing file means no flags (all off); an unreadable or invalid one keeps the
// last good flags, since a half-written file must not flip features.
func (fw *flagWatcher) reload() error {
	if fw.path == "" {
		return nil
	}
	data, err := os.ReadFile(fw.path)
	var flags map[string]flag
	switch {
	case errors.Is(err, fs.ErrNotExist):
		flags = map[string]flag{}
	case err != nil:
		return fmt.Errorf("read flag file: %w", err)
	default:
		if flags, err = parseFlags(data); err != nil {
			return fmt.Errorf("flag file %s: %w", fw.path, err)
		}
	}
	fw.cur.Store(&flags)
	fw.gauge.Reset()
	fw.gauge.WithLabelValues(flagNewCheckout).Set(flags[flagNewCheckout].share())
	for name, f := range flags {
		fw.gauge.WithLabelValues(name).Set(f.share())
	}
	return nil
}

// watch reloads every interval until ctx ends, logging a problem once rather than on every poll.
func (fw *flagWatcher) watch(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	last := ""
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		msg := ""
		if err := fw.reload(); err != nil {
			msg = err.Error()
		}
		if msg != last {
			if msg != "" {
				fw.log.Warn("flag file not applied; keeping the last good flags", "error", msg)
			} else {
				fw.log.Info("flag file applied", "flagFile", fw.path)
			}
			last = msg
		}
	}
}
