package prometheus

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/shepherd-release/shepherd/spec"
)

func TestEscapeStringRoundTrips(t *testing.T) {
	for _, v := range []string{
		"",
		"v1.2.3",
		`v1"} or vector(1) #`,
		`back\slash`,
		"new\nline",
		"tab\tand\rcr",
		`trailing\`,
		"nul\x00byte",
		"ünïcödé ✓",
		`'single' and ` + "`back`",
	} {
		esc := EscapeString(v)
		// Prometheus decodes double-quoted strings with Go's rules (strconv.Unquote).
		got, err := strconv.Unquote(`"` + esc + `"`)
		if err != nil {
			t.Errorf("EscapeString(%q) = %q does not decode: %v", v, esc, err)
			continue
		}
		if got != v {
			t.Errorf("EscapeString(%q) decodes to %q", v, got)
		}
		if strings.ContainsAny(esc, "\n\r\x00") {
			t.Errorf("EscapeString(%q) = %q still holds a raw control character", v, esc)
		}
		for i := 0; i < len(esc); i++ {
			if esc[i] == '\\' {
				i++ // skip the escaped character
				continue
			}
			if esc[i] == '"' {
				t.Errorf("EscapeString(%q) = %q has an unescaped double quote at %d", v, esc, i)
			}
		}
	}
}

func TestRender(t *testing.T) {
	data := spec.TemplateData{Service: "checkout", Environment: "prod", Version: `v1"} or vector(1) #`,
		PreviousVersion: "v0", Percent: 25, Stage: 2, ReleaseID: "r-1"}
	tests := []struct {
		name, tmpl, want string
		wantErr          bool
	}{
		{name: "every key", tmpl: `{{.Service}} {{.Environment}} {{.Version}} {{.PreviousVersion}} {{.Percent}} {{.Stage}} {{.ReleaseID}}`,
			want: `checkout prod v1\"} or vector(1) # v0 25 2 r-1`},
		{name: "injection stays in the label value", tmpl: `up{version="{{.Version}}"}`,
			want: `up{version="v1\"} or vector(1) #"}`},
		{name: "missing key", tmpl: `up{x="{{.Nope}}"}`, wantErr: true},
		{name: "does not parse", tmpl: `up{x="{{.Version"}`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Render(tt.tmpl, data)
			if tt.wantErr {
				if !errors.Is(err, ErrTemplate) {
					t.Fatalf("Render(%q) error = %v, want ErrTemplate", tt.tmpl, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Render(%q) = %q, %v; want %q", tt.tmpl, got, err, tt.want)
			}
		})
	}
}

func TestRenderMissingKeyNamesIt(t *testing.T) {
	_, err := Render(`up{x="{{.Nope}}"}`, spec.TemplateData{})
	if err == nil || !strings.Contains(err.Error(), "Nope") {
		t.Fatalf("error = %v, want one naming the missing key Nope", err)
	}
}
