package flags

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/shepherd-release/shepherd/internal/redact"
	"github.com/shepherd-release/shepherd/internal/safehttp"
	"github.com/shepherd-release/shepherd/internal/safetmpl"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"text/template"
	"time"
)

var funcs = template.FuncMap{
	// json encodes a value as JSON, so body templates stay valid whatever a flag or version holds.
	"json": func(v any) (string, error) {
		b, err := json.Marshal(v)
		return string(b), err
	},
}

func parseTemplate(name, text string) (*safetmpl.Template, error) {
	return safetmpl.Parse(name, text, funcs)
}

func render(name, text string, d FlagData) (string, error) {
	t, err := parseTemplate(name, text)
	if err != nil {
		return "", err
	}
	return t.Execute(d)
}

// setHTTP sends the request that sets one flag. The Idempotency-Key names the release, flag and percent,
// for APIs that deduplicate; the request sets state anyway, so a repeat is harmless.
func setHTTP(ctx context.Context, cfg Config, timeout time.Duration, d FlagData) error {
	target, err := render("url", cfg.URL, d)
	if err != nil {
		return fmt.Errorf("%w: flag %s: url template: %v", ErrPermanent, d.Flag, err)
	}
	u, err := url.Parse(strings.TrimSpace(target))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%w: flag %s: url must render to an absolute http:// or https:// URL", ErrPermanent, d.Flag)
	}
	where := fmt.Sprintf("set flag %s to %d%% via %s", d.Flag, d.Percent, redactURL(u))
	var body []byte
	if cfg.BodyTemplate == "" {
		body, _ = json.Marshal(d)
	} else {
		s, err := render("bodyTemplate", cfg.BodyTemplate, d)
		if err != nil {
			return fmt.Errorf("%w: %s: bodyTemplate: %v", ErrPermanent, where, err)
		}
		body = []byte(s)
	}
	method := strings.ToUpper(cfg.Method)
	if method == "" {
		method = http.MethodPut
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u.String(), bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrPermanent, where, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "shepherd-flags")
	req.Header.Set("Idempotency-Key", fmt.Sprintf("%s/flag/%s/%d", d.ReleaseID, d.Flag, d.Percent))
	for _, h := range slices.Sorted(maps.Keys(cfg.Headers)) { // sorted: the same error for the same config
		s, err := render("headers."+h, cfg.Headers[h], d)
		if err != nil {
			return fmt.Errorf("%w: %s: header %s: %v", ErrPermanent, where, h, err)
		}
		req.Header.Set(h, s)
	}
	for _, h := range slices.Sorted(maps.Keys(cfg.HeaderEnv)) {
		env := cfg.HeaderEnv[h]
		redact.Names(env) // a credential: masked wherever an answer echoes it
		v := os.Getenv(env)
		if v == "" {
			return fmt.Errorf("%w: %s: environment variable %s (headerEnv %s) is unset or empty on the worker",
				ErrPermanent, where, env, h)
		}
		req.Header.Set(h, v)
	}
	resp, err := safehttp.Client.Do(req) // no credentials follow a redirect to another host
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // *url.Error repeats the full URL, query included
		}
		return fmt.Errorf("%s: %w (will retry)", where, err)
	}
	defer resp.Body.Close()
	snippet := readSnippet(resp.Body)
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusRequestTimeout ||
		resp.StatusCode >= 500:
		return fmt.Errorf("%s: HTTP %d%s (will retry)", where, resp.StatusCode, snippet)
	default:
		return fmt.Errorf("%w: %s: HTTP %d%s: the flag service refused the request; check url, method, "+
			"headers and bodyTemplate", ErrPermanent, where, resp.StatusCode, snippet)
	}
}

// redact names the endpoint without user info or query, where API keys tend to live.
func redactURL(u *url.URL) string {
	return u.Scheme + "://" + u.Host + u.EscapedPath()
}

func readSnippet(r io.Reader) string {
	b, _ := io.ReadAll(io.LimitReader(r, 200))
	_, _ = io.Copy(io.Discard, io.LimitReader(r, 1<<16))
	s := strings.Join(strings.Fields(redact.String(string(b))), " ")
	if s == "" {
		return ""
	}
	return fmt.Sprintf(" %q", s)
}
