package safehttp

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestLimitBody(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, strings.Repeat("x", len(r.URL.Path)-1))
	}))
	defer srv.Close()
	c := &http.Client{Transport: LimitBody(http.DefaultTransport, 10)}
	for path, wantErr := range map[string]bool{"/123456789": false, "/1234567890": false, "/12345678901": true} {
		resp, err := c.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if got := errors.Is(err, ErrBodyTooLarge); got != wantErr {
			t.Errorf("%s: read %d bytes, err %v; want too large: %v", path, len(b), err, wantErr)
		}
	}
}

// Same origin keeps every header (net/http's own rules still apply); another origin keeps the safe ones.
func TestCheckRedirect(t *testing.T) {
	first, _ := http.NewRequest("GET", "https://a.example:8443/x", nil)
	for target, wantAuth := range map[string]bool{
		"https://a.example:8443/y": true,
		"https://a.example:9443/y": false,
		"http://a.example:8443/y":  false,
		"https://b.example:8443/y": false,
	} {
		next, _ := http.NewRequest("GET", target, nil)
		next.Header.Set("X-Api-Key", "k")
		next.Header.Set("User-Agent", "shepherd")
		if err := CheckRedirect(next, []*http.Request{first}); err != nil {
			t.Fatal(err)
		}
		if got := next.Header.Get("X-Api-Key") != ""; got != wantAuth {
			t.Errorf("%s: X-Api-Key kept = %v", target, got)
		}
		if next.Header.Get("User-Agent") != "shepherd" {
			t.Errorf("%s: User-Agent dropped", target)
		}
	}
	if err := CheckRedirect(first, make([]*http.Request, 10)); err == nil {
		t.Error("an 11th redirect was followed")
	}
}
