package safetmpl

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type data struct {
	Version string
	Percent int
	Items   []string
}

func render(t *testing.T, text string, d any) (string, error) {
	t.Helper()
	tm, err := Parse("t", text, template.FuncMap{"upper": strings.ToUpper})
	if err != nil {
		return "", err
	}
	return tm.Execute(d)
}

func TestOrdinaryTemplatesRender(t *testing.T) {
	d := data{Version: "v2", Percent: 25, Items: []string{"a", "b"}}
	for text, want := range map[string]string{
		`deploy {{.Version}} at {{.Percent}}%`:                  "deploy v2 at 25%",
		`{{printf "%05.1f|%-4s|%x" 3.14159 .Version 255}}`:      "003.1|v2  |ff",
		`{{range $i, $e := .Items}}{{$i}}={{upper $e}} {{end}}`: "0=A 1=B ",
		`{{if gt .Percent 10}}big{{else}}small{{end}}`:          "big",
		`{{shq .Version}} {{urlquery "a b"}} {{js "x'"}}`:       `'v2' a+b x\'`,
	} {
		got, err := render(t, text, d)
		require.NoError(t, err, text)
		assert.Equal(t, want, got, text)
	}
}

// Each bomb fails fast, with a message naming the bound, and without allocating much.
func TestBombsFailFastWithSmallMemory(t *testing.T) {
	long := strings.Repeat("x", 40<<10)
	for _, c := range []struct{ name, text, want string }{
		{"big loop", `{{range 30000000}}x{{end}}`, "the number 30000000 is larger than the limit of 100000"},
		{"loop variable", `{{$n := 30000000}}{{range $n}}{{end}}`, "larger than the limit of 100000"},
		{"nested loops", `{{range 100000}}{{range 100000}}{{end}}{{end}}`, "a {{range}} inside another {{range}} is not allowed"},
		{"output", `{{range 100000}}xxxxxxxxxx{{end}}`, "template output is larger than the limit of 65536 bytes"},
		{"printf width", `{{printf "%0999999999d" 0}}`, "widths and precisions above 1000 are not allowed"},
		{"printf star", `{{printf "%*d" .Percent 0}}`, "'*' widths are not allowed"},
		{"doubling", `{{$x := "` + long + `"}}{{range 100}}{{$x = printf "%s%s" $x $x}}{{end}}`, "larger than the limit of 65536 bytes"},
		{"escaping growth", `{{$x := "` + strings.Repeat("'", 20<<10) + `"}}{{range 100}}{{$x = js $x}}{{end}}`, "larger than the limit of 65536 bytes"},
		{"shq growth", `{{$x := "''''''''''"}}{{range 100}}{{$x = shq $x}}{{end}}`, "larger than the limit of 65536 bytes"},
		{"recursion", `{{define "a"}}{{template "a" .}}{{template "a" .}}{{end}}{{template "a" .}}`, "{{define}} and {{block}} are not allowed"},
		{"block", `{{block "a" .}}x{{end}}`, "{{define}} and {{block}} are not allowed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			start := time.Now()
			_, err := render(t, c.text, data{})
			runtime.ReadMemStats(&after)
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.want)
			assert.Less(t, time.Since(start), 500*time.Millisecond)
			assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(16<<20), "bytes allocated")
		})
	}
}

func TestSlowTemplateStopsAtTheDeadline(t *testing.T) {
	// 100000 iterations each copying a 60 KiB string through printf: seconds of work without output.
	text := `{{$x := "` + strings.Repeat("x", 60<<10) + `"}}{{range 100000}}{{$y := printf "%s" $x}}{{end}}`
	start := time.Now()
	_, err := render(t, text, data{})
	require.Error(t, err)
	assert.True(t, errors.Is(err, ErrTooSlow), "%v", err)
	assert.Less(t, time.Since(start), Timeout+time.Second)
}

// shq makes a value one shell word, whatever it holds: proven with a real sh.
func TestShqQuotesForARealShell(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	dir := t.TempDir()
	marker := filepath.Join(dir, "pwned")
	for _, v := range []string{
		`v2$(touch${IFS}` + marker + `)`,
		`v1"; touch ` + marker + `; echo "`,
		`v1'; touch ` + marker + `; echo '`,
		"v1`touch " + marker + "`",
		`it's "quoted" \ $HOME`,
		"",
	} {
		cmd, err := render(t, `printf '%s' {{shq .Version}}`, data{Version: v})
		require.NoError(t, err)
		out, err := exec.Command(sh, "-c", cmd).Output()
		require.NoError(t, err, cmd)
		assert.Equal(t, v, string(out))
		_, statErr := os.Stat(marker)
		assert.True(t, os.IsNotExist(statErr), "injection ran: %s", cmd)
	}
}
