package alerts

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

const token = "0123456789abcdef-test-token"

var released = time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)

// fakeReleases answers like the worker's Temporal implementation would, and records the aborts.
type fakeReleases struct {
	mu       sync.Mutex
	running  map[string]bool // "service/environment"
	down     bool            // Temporal unreachable
	rollback map[string]bool // already rolling back
	aborts   []AbortRequest
}

func (f *fakeReleases) Describe(_ context.Context, svc, env string) (Release, error) {
	if f.down {
		return Release{}, errors.New("connection refused")
	}
	if !f.running[svc+"/"+env] {
		return Release{}, nil
	}
	return Release{Running: true, RunID: "run-" + svc, StartTime: released}, nil
}

func (f *fakeReleases) Abort(_ context.Context, req AbortRequest) (AbortResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.aborts = append(f.aborts, req)
	k := req.Service + "/" + req.Environment
	if f.rollback[k] {
		return AbortResult{Outcome: AlreadyRollingBack, Message: "already rolling back"}, nil
	}
	f.rollback[k] = true
	return AbortResult{Outcome: Aborted, Message: "abort accepted; rolling back", Phase: "RollingBack"}, nil
}

func newFake(running ...string) *fakeReleases {
	f := &fakeReleases{running: map[string]bool{}, rollback: map[string]bool{}}
	for _, r := range running {
		f.running[r] = true
	}
	return f
}

func firing(name, svc, env string, extra ...string) Alert {
	l := map[string]string{"alertname": name, "service": svc, "environment": env}
	for i := 0; i+1 < len(extra); i += 2 {
		l[extra[i]] = extra[i+1]
	}
	return Alert{Status: "firing", Labels: l, StartsAt: released.Add(5 * time.Minute), Fingerprint: "fp-" + name,
		Annotations: map[string]string{"summary": "error rate above 5%"}}
}

func notification(alerts ...Alert) []byte {
	b, _ := json.Marshal(map[string]any{"version": "4", "receiver": "shepherd", "status": "firing", "groupKey": "{}:{}", "alerts": alerts})
	return b
}

type counts struct {
	mu       sync.Mutex
	outcomes map[string]int
	codes    map[int]int
}

func serve(t *testing.T, h *Handler, auth string, body []byte) (int, Response, *counts) {
	t.Helper()
	c := &counts{outcomes: map[string]int{}, codes: map[int]int{}}
	h.Observe = func(env string, o Outcome) { c.mu.Lock(); c.outcomes[env+"/"+string(o)]++; c.mu.Unlock() }
	h.ObserveRequest = func(code int) { c.codes[code]++ }
	req := httptest.NewRequest(http.MethodPost, "/alerts/abort", bytes.NewReader(body))
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var resp Response
	if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
		t.Fatalf("answer %d is not JSON: %v\n%s", rec.Code, err, rec.Body)
	}
	if c.codes[rec.Code] != 1 {
		t.Errorf("requests counted %v, want one %d", c.codes, rec.Code)
	}
	return rec.Code, resp, c
}

func TestFiringAlertAbortsItsRelease(t *testing.T) {
	f := newFake("checkout/production")
	h := &Handler{Token: []byte(token), Releases: f}
	code, resp, c := serve(t, h, "Bearer "+token, notification(firing("HighErrorRate", "checkout", "production", "severity", "page")))
	if code != http.StatusOK || resp.Aborted != 1 || len(resp.Results) != 1 || resp.Results[0].Outcome != Aborted {
		t.Fatalf("answer %d %+v", code, resp)
	}
	if len(f.aborts) != 1 {
		t.Fatalf("aborts sent: %+v", f.aborts)
	}
	a := f.aborts[0]
	if a.Service != "checkout" || a.Environment != "production" || a.RunID != "run-checkout" || a.By != "alertmanager:HighErrorRate" {
		t.Errorf("abort %+v", a)
	}
	want := `alert HighErrorRate firing since 2026-11-30T10:05:00Z: error rate above 5%; labels: alertname="HighErrorRate", ` +
		`environment="production", service="checkout", severity="page"`
	if a.Reason != want {
		t.Errorf("reason\n got  %s\n want %s", a.Reason, want)
	}
	if c.outcomes["production/aborted"] != 1 {
		t.Errorf("outcomes counted %v", c.outcomes)
	}
}

func TestWhatDoesNotAbort(t *testing.T) {
	f := newFake("checkout/production")
	h := &Handler{Token: []byte(token), Releases: f}
	resolved := firing("HighErrorRate", "checkout", "production")
	resolved.Status = "resolved"
	noEnv := firing("HighErrorRate", "checkout", "production")
	delete(noEnv.Labels, "environment")
	badSvc := firing("HighErrorRate", "Checkout; rm -rf", "production")
	older := firing("StillBurning", "checkout", "production")
	older.StartsAt = released.Add(-time.Hour)
	other := firing("HighErrorRate", "cart", "production")
	code, resp, c := serve(t, h, "Bearer "+token, notification(resolved, noEnv, badSvc, older, other))
	if code != http.StatusOK || resp.Aborted != 0 {
		t.Fatalf("answer %d %+v", code, resp)
	}
	want := []struct {
		o   Outcome
		msg string
	}{
		{Ignored, "status \"resolved\": only firing alerts abort"},
		{Ignored, "no service and environment labels"},
		{Ignored, `label service="Checkout; rm -rf" is not a service name`},
		{Ignored, "before this release started"},
		{NoActiveRelease, "no release of cart is running in production"},
	}
	for i, w := range want {
		if r := resp.Results[i]; r.Outcome != w.o || !strings.Contains(r.Message, w.msg) {
			t.Errorf("alert %d: %s %q, want %s %q", i, r.Outcome, r.Message, w.o, w.msg)
		}
	}
	if len(f.aborts) != 0 {
		t.Errorf("aborts sent: %+v", f.aborts)
	}
	if c.outcomes["production/ignored"] != 3 || c.outcomes["/ignored"] != 1 || c.outcomes["production/no_active_release"] != 1 {
		t.Errorf("outcomes counted %v", c.outcomes)
	}
}

func TestOneAbortPerReleaseAndIdempotent(t *testing.T) {
	f := newFake("checkout/production", "cart/staging")
	h := &Handler{Token: []byte(token), Releases: f}
	body := notification(firing("HighErrorRate", "checkout", "production"), firing("HighLatency", "checkout", "production"),
		firing("HighErrorRate", "cart", "staging"))
	_, resp, _ := serve(t, h, "Bearer "+token, body)
	if resp.Aborted != 2 || len(f.aborts) != 2 {
		t.Fatalf("aborted %d, sent %+v", resp.Aborted, f.aborts)
	}
	if r := resp.Results[1]; r.Outcome != AlreadyRollingBack || !strings.Contains(r.Message, "alertmanager:HighErrorRate of the same notification") {
		t.Errorf("second alert of the release: %+v", r)
	}
	// Alertmanager sends the same group again (repeat_interval, or a retry): nothing aborts twice.
	code, resp, _ := serve(t, h, "Bearer "+token, body)
	if code != http.StatusOK || resp.Aborted != 0 || resp.Results[0].Outcome != AlreadyRollingBack {
		t.Errorf("repeat: %d %+v", code, resp)
	}
}

func TestTemporalDownAnswers503(t *testing.T) {
	f := newFake("checkout/production")
	f.down = true
	h := &Handler{Token: []byte(token), Releases: f}
	code, resp, _ := serve(t, h, "Bearer "+token, notification(firing("HighErrorRate", "checkout", "production")))
	if code != http.StatusServiceUnavailable || resp.Results[0].Outcome != Unavailable || !strings.Contains(resp.Results[0].Message, "connection refused") {
		t.Fatalf("answer %d %+v", code, resp)
	}
	// Only firing alerts that reach Temporal matter: a notification of resolved alerts still answers 200.
	resolved := firing("HighErrorRate", "checkout", "production")
	resolved.Status = "resolved"
	if code, resp, _ := serve(t, h, "Bearer "+token, notification(resolved)); code != http.StatusOK {
		t.Errorf("resolved while Temporal is down: %d %+v", code, resp)
	}
}

func TestAuthentication(t *testing.T) {
	body := notification(firing("HighErrorRate", "checkout", "production"))
	for name, tc := range map[string]struct {
		token []byte
		auth  string
	}{
		"no header":           {[]byte(token), ""},
		"wrong token":         {[]byte(token), "Bearer " + token + "x"},
		"prefix of token":     {[]byte(token), "Bearer " + token[:len(token)-1]},
		"basic auth":          {[]byte(token), "Basic " + token},
		"empty token":         {[]byte(token), "Bearer "},
		"no configured":       {nil, "Bearer "},
		"short configured":    {[]byte("short"), "Bearer short"},
		"oversized presented": {[]byte(token), "Bearer " + strings.Repeat("x", MaxTokenBytes+1)},
	} {
		t.Run(name, func(t *testing.T) {
			f := newFake("checkout/production")
			code, resp, _ := serve(t, &Handler{Token: tc.token, Releases: f}, tc.auth, body)
			if code != http.StatusUnauthorized || !strings.Contains(resp.Error, "bearer token") {
				t.Fatalf("answer %d %+v", code, resp)
			}
			if len(f.aborts) != 0 {
				t.Errorf("aborts sent: %+v", f.aborts)
			}
		})
	}
}

func TestTokenIsNeverInTheAnswerOrLog(t *testing.T) {
	var log bytes.Buffer
	h := &Handler{Token: []byte(token), Releases: newFake()}
	h.Logger = newTextLogger(&log)
	_, resp, _ := serve(t, h, "Bearer wrong-"+token, notification(firing("HighErrorRate", "checkout", "production")))
	b, _ := json.Marshal(resp)
	if strings.Contains(string(b), token) || strings.Contains(log.String(), token) {
		t.Errorf("the token leaked:\nanswer %s\nlog %s", b, log.String())
	}
	if !strings.Contains(log.String(), "wrong bearer token") {
		t.Errorf("the refusal is not logged: %s", log.String())
	}
}

func TestBounds(t *testing.T) {
	h := &Handler{Token: []byte(token), Releases: newFake()}
	auth := "Bearer " + token
	big := bytes.Repeat([]byte(" "), MaxBodyBytes+1)
	if code, resp, _ := serve(t, h, auth, big); code != http.StatusRequestEntityTooLarge {
		t.Errorf("a body over %d bytes: %d %+v", MaxBodyBytes, code, resp)
	}
	many := make([]Alert, MaxAlerts+1)
	if code, resp, _ := serve(t, h, auth, notification(many...)); code != http.StatusRequestEntityTooLarge || !strings.Contains(resp.Error, "max_alerts") {
		t.Errorf("%d alerts: %d %+v", MaxAlerts+1, code, resp)
	}
	for name, body := range map[string]string{
		"not JSON":     "alerts: []",
		"no alerts":    `{"version":"4","status":"firing"}`,
		"alerts wrong": `{"alerts":[{"labels":"x"}]}`,
	} {
		if code, resp, _ := serve(t, h, auth, []byte(body)); code != http.StatusBadRequest || !strings.Contains(strings.ToLower(resp.Error), "alert") {
			t.Errorf("%s: %d %+v", name, code, resp)
		}
	}
	req := httptest.NewRequest(http.MethodGet, "/alerts/abort", nil)
	req.Header.Set("Authorization", auth)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d", rec.Code)
	}
}

// Whatever the labels hold, "by" and the reason stay within the workflow's bounds, valid UTF-8, on one
// line, and the same for the same alert.
func TestRecordedTextIsBoundedAndDeterministic(t *testing.T) {
	a := firing(strings.Repeat("é", 200), "checkout", "production")
	a.Annotations["summary"] = strings.Repeat("line\n", 2000)
	for i := range 100 {
		a.Labels[fmt.Sprintf("label%03d", i)] = "v\x00\n"
	}
	a.Labels["zz"] = strings.Repeat("long\x00", 10000)
	t1, why := Classify(a, Labels{Service: "service", Environment: "environment"})
	if why != "" {
		t.Fatal(why)
	}
	if len(t1.By) > MaxBy || len(t1.Reason) > MaxReason || !utf8.ValidString(t1.By) || !utf8.ValidString(t1.Reason) {
		t.Errorf("by %d bytes, reason %d bytes (limits %d, %d)", len(t1.By), len(t1.Reason), MaxBy, MaxReason)
	}
	if strings.ContainsAny(t1.Reason, "\n\x00") || strings.ContainsAny(t1.By, "\n\x00") {
		t.Errorf("control characters recorded: %q", t1.Reason[:200])
	}
	if !strings.Contains(t1.Reason, "(+") {
		t.Errorf("labels beyond %d are not summarised: ...%s", maxLabelsShown, t1.Reason[len(t1.Reason)-200:])
	}
	big := firing("HighErrorRate", "checkout", "production", "payload", strings.Repeat("\x00", 100000))
	if t3, _ := Classify(big, Labels{Service: "service", Environment: "environment"}); len(t3.Reason) > MaxReason {
		t.Errorf("reason of %d bytes", len(t3.Reason))
	}
	for range 20 {
		if t2, _ := Classify(a, Labels{Service: "service", Environment: "environment"}); t2 != t1 {
			t.Fatal("the same alert recorded differently")
		}
	}
}

func TestLabelNamesAreConfigurable(t *testing.T) {
	f := newFake("checkout/prod")
	h := &Handler{Token: []byte(token), Releases: f, Labels: Labels{Service: "app", Environment: "env"}}
	a := firing("HighErrorRate", "ignored", "ignored", "app", "checkout", "env", "prod")
	if _, resp, _ := serve(t, h, "Bearer "+token, notification(a)); resp.Aborted != 1 || f.aborts[0].Service != "checkout" {
		t.Fatalf("%+v %+v", resp, f.aborts)
	}
}

// A real notification as Alertmanager 0.27 sends it parses, extra fields and all.
func TestParseAlertmanagerNotification(t *testing.T) {
	const body = `{"receiver":"shepherd","status":"firing","alerts":[{"status":"firing","labels":{"alertname":"HighErrorRate",
"environment":"production","service":"checkout","severity":"page"},"annotations":{"summary":"5xx above 5%"},
"startsAt":"2026-11-30T10:05:00.123Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"http://prometheus:9090/graph?g0.expr=x",
"fingerprint":"c0ffee"}],"groupLabels":{"alertname":"HighErrorRate"},"commonLabels":{"alertname":"HighErrorRate"},
"commonAnnotations":{},"externalURL":"http://alertmanager:9093","version":"4","groupKey":"{}:{alertname=\"HighErrorRate\"}",
"truncatedAlerts":0}`
	p, err := Parse([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if p.Version != "4" || len(p.Alerts) != 1 || p.Alerts[0].Fingerprint != "c0ffee" || !p.Alerts[0].StartsAt.Equal(released.Add(5*time.Minute+123*time.Millisecond)) {
		t.Errorf("%+v", p)
	}
}

func newTextLogger(w *bytes.Buffer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }

// Refused requests are logged at most every refusalLogEvery, with how many there were.
func TestRefusalsLogBounded(t *testing.T) {
	var l refusalLog
	now := released
	if n, ok := l.note(now); !ok || n != 1 {
		t.Fatalf("first refusal: %d %v", n, ok)
	}
	for i := range 100 {
		if _, ok := l.note(now.Add(time.Duration(i) * time.Millisecond)); ok {
			t.Fatalf("refusal %d logged within %s of the last line", i, refusalLogEvery)
		}
	}
	if n, ok := l.note(now.Add(refusalLogEvery)); !ok || n != 101 {
		t.Errorf("after %s: %d %v, want 101 true", refusalLogEvery, n, ok)
	}
}
