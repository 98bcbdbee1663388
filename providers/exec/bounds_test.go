package exec

import (
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shepherd-release/shepherd/spec"
)

// A template bomb in a command fails fast with a clear error instead of allocating gigabytes.
func TestTemplateBombFailsFast(t *testing.T) {
	for text, want := range map[string]string{
		`echo {{range 30000000}}x{{end}}`:                      "larger than the limit of 100000",
		`echo {{range 100000}}xxxxxxxxxxxxxxxxxxxxxxxx{{end}}`: "template output is larger than the limit of 65536 bytes",
		`echo {{printf "%0999999999d" 0}}`:                     "widths and precisions above 1000 are not allowed",
	} {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		start := time.Now()
		// New refuses what it can see when parsing the worker configuration; the rest fails on rendering.
		cfg, err := New(Config{Deploy: text, Traffic: "t", Promote: "p", Rollback: "r"})
		if err == nil {
			_, err = cfg.Render("deploy", spec.TemplateData{Version: "v2"})
		}
		runtime.ReadMemStats(&after)
		require.Error(t, err, text)
		assert.Contains(t, err.Error(), want)
		assert.Less(t, time.Since(start), time.Second)
		assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(16<<20), "bytes allocated by %s", text)
	}
}
