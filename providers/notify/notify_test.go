package notify

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shepherd-release/shepherd/record"
	"github.com/shepherd-release/shepherd/spec"
)

// received is one request the test receiver got.
type received struct {
	method  string
	path    string
	headers http.Header
	body    []byte
}

// receiver is a loopback webhook that records requests and answers with status.
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	reqs   []received
	status int
	answer string
}

func newReceiver(t *testing.T) *receiver {
	t.Helper()
	r := &receiver{status: http.StatusOK, answer: "ok"}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.reqs = append(r.reqs, received{req.Method, req.URL.Path, req.Header.Clone(), b})
		status, answer := r.status, r.answer
		r.mu.Unlock()
		w.WriteHeader(status)
		_, _ = io.WriteString(w, answer)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) last(t *testing.T) received {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.reqs) == 0 {
		t.Fatal("receiver got no request")
	}
	return r.reqs[len(r.reqs)-1]
}

func (r *receiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.reqs)
}

func ptr(f float64) *float64 { return &f }

var t0 = time.Date(2026, 3, 14, 9, 30, 0, 0, time.UTC)

func baseEvent(kind EventKind) Event {
	return Event{
		Kind: kind, ReleaseID: "rel-42", WorkflowID: "release:checkout:production",
		Service: "checkout", Environment: "production", Version: "1.4.0", PreviousVersion: "1.3.2",
		Time: t0,
	}
}

var failing = []record.Measurement{
	{Check: "error-rate", Stage: 2, Value: ptr(0.052), Max: ptr(0.01), Verdict: record.Fail, Reason: "0.052 > max 0.01"},
	{Check: "p99-latency", Stage: 2, Error: "prometheus unreachable", Max: ptr(0.5), Verdict: record.Inconclusive},
}

func TestSlackMessagePerKind(t *testing.T) {
	const ids = "\nRelease rel-42 · workflow release:checkout:production"
	cases := []struct {
		kind EventKind
		edit func(*Event)
		want string
	}{
		{KindStarted, func(e *Event) { e.Message = "Plan: 1 → 5 → 25 → 50 → 100 %, 15m soaks." },
			"🚀 Release started: checkout 1.4.0 to production (stable: 1.3.2).\nPlan: 1 → 5 → 25 → 50 → 100 %, 15m soaks." + ids},
		{KindStageEntered, func(e *Event) { e.Stage, e.Percent = 2, 5 },
			"➡️ checkout 1.4.0 in production: stage 2, 5% of traffic on the new version." + ids},
		{KindApprovalNeeded, func(e *Event) {
			e.Stage, e.Percent = 3, 25
			e.Message = "Stage 2 passed: error-rate 0.002, p99-latency 0.21."
			e.ApproveCommand = "shepherd approve release:checkout:production --by $USER"
			e.AbortCommand = "shepherd abort release:checkout:production --by $USER --reason '...'"
		}, "✋ Approval needed: checkout 1.4.0 in production is waiting before stage 3 (25% of traffic).\n" +
			"Stage 2 passed: error-rate 0.002, p99-latency 0.21.\n" +
			"Approve: `shepherd approve release:checkout:production --by $USER`\n" +
			"Abort: `shepherd abort release:checkout:production --by $USER --reason '...'`" + ids},
		{KindAnalysisFailed, func(e *Event) {
			e.Stage, e.Percent, e.Evidence = 2, 5, failing
			e.Message = "error-rate failed 1 time (failureLimit 1)"
		}, "⚠️ Analysis failed: checkout 1.4.0 in production at stage 2 (5% of traffic).\n" +
			"Cause: error-rate failed 1 time (failureLimit 1)\n" +
			"Evidence:\n" +
			"• error-rate = 0.052 (max 0.01): Fail\n" +
			"• p99-latency = no value (prometheus unreachable) (max 0.5): Inconclusive" + ids},
		{KindRolledBack, func(e *Event) {
			e.Stage, e.Percent, e.Evidence = 2, 5, failing[:1]
			e.Message = "check error-rate failed: 0.052 > max 0.01"
		}, "⏪ Rolled back: checkout 1.4.0 in production at stage 2 (5% of traffic); traffic is back on 1.3.2.\n" +
			"Cause: check error-rate failed: 0.052 &gt; max 0.01\n" + // Slack needs <, >, & escaped
			"Evidence:\n" +
			"• error-rate = 0.052 (max 0.01): Fail" + ids},
		{KindSucceeded, func(e *Event) { e.Stage, e.Percent = 5, 100 },
			"✅ Released: checkout 1.4.0 serves 100% of production, replacing 1.3.2." + ids},
		{KindRollbackFailed, func(e *Event) {
			e.Stage, e.Percent = 4, 50
			e.Message = "traffic step: exit status 1: kubectl: connection refused"
		}, "🚨 Rollback FAILED: checkout 1.4.0 in production at stage 4 (50% of traffic). Manual intervention " +
			"required: the new version may still be serving traffic.\n" +
			"Error: traffic step: exit status 1: kubectl: connection refused" + ids},
		{KindRollbackStuck, func(e *Event) {
			e.Stage, e.Percent = 4, 50
			e.Message = `rollback step "traffic to stable" failed: kubectl: connection refused`
		}, "🚨 Rollback STUCK: checkout 1.4.0 in production at stage 4 (50% of traffic). A rollback step keeps failing; " +
			"nothing after it runs until a person sends retry (after fixing the cause) or acknowledge (after finishing it by hand).\n" +
			"Error: rollback step \"traffic to stable\" failed: kubectl: connection refused" + ids},
		{KindPostMortem, func(e *Event) { e.Message = "Record: reports/checkout/production/rel-42.postmortem.md" },
			"📝 Post-mortem needed: checkout 1.4.0 in production.\nRecord: reports/checkout/production/rel-42.postmortem.md" + ids},
	}
	if len(cases) != len(Kinds) {
		t.Fatalf("test covers %d kinds, package has %d", len(cases), len(Kinds))
	}
	rcv := newReceiver(t)
	cfg := Config{Type: TypeSlack, URL: rcv.URL + "/services/T000/B000/XXXX"}
	for _, c := range cases {
		t.Run(string(c.kind), func(t *testing.T) {
			ev := baseEvent(c.kind)
			c.edit(&ev)
			key := "rel-42/" + string(c.kind)
			if err := Send(context.Background(), cfg, ev, key); err != nil {
				t.Fatalf("Send: %v", err)
			}
			got := rcv.last(t)
			if got.method != http.MethodPost || got.path != "/services/T000/B000/XXXX" {
				t.Errorf("request %s %s", got.method, got.path)
			}
			if h := got.headers.Get("Idempotency-Key"); h != key {
				t.Errorf("Idempotency-Key = %q, want %q", h, key)
			}
			if h := got.headers.Get("Content-Type"); h != "application/json" {
				t.Errorf("Content-Type = %q", h)
			}
			var body map[string]any
			if err := json.Unmarshal(got.body, &body); err != nil {
				t.Fatalf("body is not JSON: %v: %s", err, got.body)
			}
			if len(body) != 1 {
				t.Errorf("slack body has keys %v, want only text", body)
			}
			if body["text"] != c.want {
				t.Errorf("text:\n got: %q\nwant: %q", body["text"], c.want)
			}
		})
	}
}

func TestRolledBackWithoutPreviousVersionOrStage(t *testing.T) {
	ev := baseEvent(KindRolledBack)
	ev.PreviousVersion = ""
	ev.Message = "deploy step failed"
	got, err := Message(Config{Type: TypeWebhook}, ev)
	if err != nil {
		t.Fatal(err)
	}
	want := "⏪ Rolled back: checkout 1.4.0 in production; traffic is back on the stable version.\n" +
		"Cause: deploy step failed\nRelease rel-42 · workflow release:checkout:production"
	if got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

func TestWebhookSendsEventJSON(t *testing.T) {
	rcv := newReceiver(t)
	ev := baseEvent(KindRolledBack)
	ev.Stage, ev.Percent, ev.Evidence = 2, 5, failing[:1]
	ev.Message = "check error-rate failed"
	if err := Send(context.Background(), Config{Type: TypeWebhook, URL: rcv.URL + "/hook"}, ev, "k-1"); err != nil {
		t.Fatal(err)
	}
	got := rcv.last(t)
	if h := got.headers.Get("Idempotency-Key"); h != "k-1" {
		t.Errorf("Idempotency-Key = %q", h)
	}
	if h := got.headers.Get("X-Shepherd-Event"); h != "rolledBack" {
		t.Errorf("X-Shepherd-Event = %q", h)
	}
	var body map[string]any
	if err := json.Unmarshal(got.body, &body); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{
		"kind": "rolledBack", "releaseID": "rel-42", "workflowID": "release:checkout:production",
		"service": "checkout", "environment": "production", "version": "1.4.0", "previousVersion": "1.3.2",
		"stage": 2.0, "percent": 5.0, "message": "check error-rate failed", "time": "2026-03-14T09:30:00Z",
	} {
		if body[k] != want {
			t.Errorf("%s = %#v, want %#v", k, body[k], want)
		}
	}
	text, _ := body["text"].(string)
	if !strings.HasPrefix(text, "⏪ Rolled back: checkout 1.4.0 in production at stage 2") {
		t.Errorf("text = %q", text)
	}
	ev0 := body["evidence"].([]any)[0].(map[string]any)
	if ev0["check"] != "error-rate" || ev0["value"] != 0.052 || ev0["max"] != 0.01 || ev0["verdict"] != "Fail" {
		t.Errorf("evidence = %#v", ev0)
	}
	// The payload decodes back into the event: the wire contract is the Event type.
	var back struct {
		Event
		Text string `json:"text"`
	}
	if err := json.Unmarshal(got.body, &back); err != nil {
		t.Fatal(err)
	}
	if back.Kind != ev.Kind || back.Stage != 2 || !back.Time.Equal(t0) || len(back.Evidence) != 1 {
		t.Errorf("decoded event = %+v", back.Event)
	}
}

func TestTemplateOverride(t *testing.T) {
	rcv := newReceiver(t)
	cfg := Config{Type: TypeSlack, URL: rcv.URL, Templates: map[EventKind]string{
		KindRolledBack: "ROLLBACK {{.Service}}@{{.Version}} ({{.Environment}}) — {{.Message}}{{range .Evidence}} | {{measurement .}}{{end}}",
	}}
	ev := baseEvent(KindRolledBack)
	ev.Message, ev.Evidence = "error budget burn", failing[:1]
	if err := Send(context.Background(), cfg, ev, "k"); err != nil {
		t.Fatal(err)
	}
	var body map[string]string
	_ = json.Unmarshal(rcv.last(t).body, &body)
	want := "ROLLBACK checkout@1.4.0 (production) — error budget burn | error-rate = 0.052 (max 0.01): Fail"
	if body["text"] != want {
		t.Errorf("text = %q, want %q", body["text"], want)
	}
	// Kinds without an override keep the default.
	if err := Send(context.Background(), cfg, baseEvent(KindSucceeded), "k2"); err != nil {
		t.Fatal(err)
	}
	_ = json.Unmarshal(rcv.last(t).body, &body)
	if !strings.HasPrefix(body["text"], "✅ Released: checkout 1.4.0") {
		t.Errorf("default text = %q", body["text"])
	}
}

func TestBadTemplateIsPermanent(t *testing.T) {
	rcv := newReceiver(t)
	for name, tmpl := range map[string]string{
		"parse": "{{.Service",
		"field": "{{.NoSuchField}}",
	} {
		cfg := Config{Type: TypeSlack, URL: rcv.URL, Templates: map[EventKind]string{KindStarted: tmpl}}
		err := Send(context.Background(), cfg, baseEvent(KindStarted), "k")
		if !errors.Is(err, ErrPermanent) {
			t.Errorf("%s: err = %v, want ErrPermanent", name, err)
		}
	}
	if rcv.count() != 0 {
		t.Errorf("receiver got %d requests for invalid templates", rcv.count())
	}
}

func TestURLEnv(t *testing.T) {
	rcv := newReceiver(t)
	t.Setenv("SHEPHERD_TEST_SLACK_URL", rcv.URL+"/services/secret-token")
	cfg := Config{Type: TypeSlack, URLEnv: "SHEPHERD_TEST_SLACK_URL"}
	if err := Send(context.Background(), cfg, baseEvent(KindStarted), "k"); err != nil {
		t.Fatal(err)
	}
	if p := rcv.last(t).path; p != "/services/secret-token" {
		t.Errorf("path = %q", p)
	}

	t.Setenv("SHEPHERD_TEST_SLACK_URL", "")
	err := Send(context.Background(), cfg, baseEvent(KindStarted), "k")
	if !errors.Is(err, ErrPermanent) || !strings.Contains(err.Error(), "SHEPHERD_TEST_SLACK_URL") {
		t.Errorf("unset URLEnv: err = %v, want ErrPermanent naming the variable", err)
	}
	t.Setenv("SHEPHERD_TEST_SLACK_URL", "not a url/secret-token")
	err = Send(context.Background(), cfg, baseEvent(KindStarted), "k")
	if !errors.Is(err, ErrPermanent) || strings.Contains(err.Error(), "secret-token") {
		t.Errorf("bad URLEnv value: err = %v, want ErrPermanent without the value", err)
	}
}

func TestStatusClassification(t *testing.T) {
	rcv := newReceiver(t)
	cfg := Config{Type: TypeSlack, URL: rcv.URL + "/services/secret-token?token=hush"}
	for _, c := range []struct {
		status    int
		answer    string
		permanent bool
	}{
		{400, "invalid_payload", true},
		{403, "invalid_token", true},
		{404, "no_service", true},
		{408, "", false},
		{429, "rate_limited", false},
		{500, "oops", false},
		{503, "", false},
	} {
		rcv.mu.Lock()
		rcv.status, rcv.answer = c.status, c.answer
		rcv.mu.Unlock()
		err := Send(context.Background(), cfg, baseEvent(KindStarted), "k")
		if err == nil {
			t.Errorf("HTTP %d: no error", c.status)
			continue
		}
		if errors.Is(err, ErrPermanent) != c.permanent {
			t.Errorf("HTTP %d: permanent = %v, want %v (%v)", c.status, !c.permanent, c.permanent, err)
		}
		msg := err.Error()
		if strings.Contains(msg, "secret-token") || strings.Contains(msg, "hush") {
			t.Errorf("HTTP %d: error leaks the URL: %v", c.status, err)
		}
		if c.answer != "" && !strings.Contains(msg, c.answer) {
			t.Errorf("HTTP %d: error %q lacks the receiver's answer %q", c.status, msg, c.answer)
		}
	}
}

func TestTransportErrorIsRetryable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	dead := srv.URL + "/services/secret-token"
	srv.Close()
	err := Send(context.Background(), Config{Type: TypeWebhook, URL: dead}, baseEvent(KindStarted), "k")
	if err == nil || errors.Is(err, ErrPermanent) {
		t.Fatalf("err = %v, want a retryable error", err)
	}
	if strings.Contains(err.Error(), "secret-token") {
		t.Errorf("error leaks the URL: %v", err)
	}
}

func TestTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	start := time.Now()
	cfg := Config{Type: TypeWebhook, URL: srv.URL, Timeout: spec.Duration(100 * time.Millisecond)}
	err := Send(context.Background(), cfg, baseEvent(KindStarted), "k")
	if err == nil || errors.Is(err, ErrPermanent) {
		t.Fatalf("err = %v, want a retryable timeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Send took %v despite a 100ms timeout", d)
	}
}

func TestDefaultIdempotencyKeyAndEventsFilter(t *testing.T) {
	rcv := newReceiver(t)
	cfg := Config{Type: TypeWebhook, URL: rcv.URL, Events: []EventKind{KindRolledBack, KindRollbackFailed}}
	if err := Send(context.Background(), cfg, baseEvent(KindStarted), ""); err != nil {
		t.Fatal(err)
	}
	if rcv.count() != 0 {
		t.Fatalf("a filtered-out kind was sent")
	}
	ev := baseEvent(KindRolledBack)
	ev.Stage = 3
	if err := Send(context.Background(), cfg, ev, ""); err != nil {
		t.Fatal(err)
	}
	if h := rcv.last(t).headers.Get("Idempotency-Key"); h != "rel-42/rolledBack/3" {
		t.Errorf("default Idempotency-Key = %q", h)
	}
}

func TestSlackEscapesValues(t *testing.T) {
	ev := baseEvent(KindRolledBack)
	ev.Message = "latency <5ms & rising <!channel>"
	got, err := Message(Config{Type: TypeSlack}, ev)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(got, "Cause: latency &lt;5ms &amp; rising &lt;!channel&gt;") {
		t.Errorf("slack text not escaped: %q", got)
	}
	got, _ = Message(Config{Type: TypeWebhook}, ev)
	if !strings.Contains(got, "Cause: latency <5ms & rising <!channel>") {
		t.Errorf("webhook text altered: %q", got)
	}
}

func TestValidate(t *testing.T) {
	good := Config{Type: TypeSlack, URLEnv: "SLACK_URL"}
	if err := good.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	for name, c := range map[string]Config{
		"no type":       {URL: "http://x"},
		"bad type":      {Type: "email", URL: "http://x"},
		"no url":        {Type: TypeSlack},
		"both":          {Type: TypeSlack, URL: "http://x", URLEnv: "X"},
		"relative url":  {Type: TypeSlack, URL: "/hook"},
		"bad template":  {Type: TypeSlack, URLEnv: "X", Templates: map[EventKind]string{KindStarted: "{{"}},
		"unknown kind":  {Type: TypeSlack, URLEnv: "X", Templates: map[EventKind]string{"exploded": "x"}},
		"unknown event": {Type: TypeSlack, URLEnv: "X", Events: []EventKind{"exploded"}},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%s: no error", name)
		}
		if err := Send(context.Background(), c, baseEvent(KindStarted), "k"); !errors.Is(err, ErrPermanent) {
			t.Errorf("%s: Send err = %v, want ErrPermanent", name, err)
		}
	}
	if err := (Config{Type: TypeSlack, URL: "http://x/secret-token"}).Validate(); err != nil {
		t.Errorf("absolute URL rejected: %v", err)
	}
	err := (Config{Type: TypeSlack, URL: "ftp://x/secret-token"}).Validate()
	if err == nil || strings.Contains(err.Error(), "secret-token") {
		t.Errorf("ftp URL: err = %v, want an error without the URL", err)
	}
}

func TestLongMessageIsTruncated(t *testing.T) {
	ev := baseEvent(KindAnalysisFailed)
	for i := 0; i < 2000; i++ {
		ev.Evidence = append(ev.Evidence, failing[0])
	}
	got, err := Message(Config{Type: TypeSlack}, ev)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) > MaxMessageLen+100 || !strings.HasSuffix(got, "(truncated; see the release report)") {
		t.Errorf("len = %d, suffix %q", len(got), got[len(got)-40:])
	}
}
