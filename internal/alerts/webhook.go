package alerts

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Outcome is what became of one alert of a notification. The values are also the outcome label of
// shepherd_alert_aborts_total.
type Outcome string

// Outcomes.
const (
	// Aborted: the release accepted the abort and rolls back.
	Aborted Outcome = "aborted"
	// AlreadyRollingBack: the release was rolling back already (another alert, a person, its analysis).
	AlreadyRollingBack Outcome = "already_rolling_back"
	// NoActiveRelease: no release of that service runs in that environment; nothing to do.
	NoActiveRelease Outcome = "no_active_release"
	// Rejected: the release refused the abort (it is being promoted, or its rollback is stuck).
	Rejected Outcome = "rejected"
	// Ignored: not an alert that aborts (resolved, without the labels, older than the release).
	Ignored Outcome = "ignored"
	// Unavailable: Temporal could not be reached; the notification answers 503 so Alertmanager retries.
	Unavailable Outcome = "unavailable"
)

// Outcomes lists every Outcome.
var Outcomes = []Outcome{Aborted, AlreadyRollingBack, NoActiveRelease, Rejected, Ignored, Unavailable}

// Release is what the webhook needs to know of a release before aborting it.
type Release struct {
	// Running is false when no release of the service runs in the environment.
	Running bool
	// RunID identifies the run, so the abort reaches the run that was looked at and no later one.
	RunID string
	// StartTime is when the run started.
	StartTime time.Time
}

// AbortRequest is one abort for Releases.Abort.
type AbortRequest struct {
	Service, Environment, RunID string
	// By and Reason go into the release's decision log (Target.By, Target.Reason).
	By, Reason string
}

// AbortResult is how the release answered an abort.
type AbortResult struct {
	// Outcome is Aborted, AlreadyRollingBack, NoActiveRelease or Rejected.
	Outcome Outcome
	// Message is the release's answer (or its reason for refusing).
	Message string
	// Phase is the release's phase after the abort, when it answered.
	Phase string
}

// Releases reaches the releases; the worker implements it over Temporal. An error means the answer is
// unknown (Temporal unreachable, a timeout): the notification is answered 503 and Alertmanager retries.
type Releases interface {
	Describe(ctx context.Context, service, environment string) (Release, error)
	Abort(ctx context.Context, req AbortRequest) (AbortResult, error)
}

// Defaults of Handler.
const (
	// DefaultTimeout bounds the handling of one notification, every abort included.
	DefaultTimeout = 30 * time.Second
	// DefaultCallTimeout bounds one call to Releases.
	DefaultCallTimeout = 10 * time.Second
	// concurrency is how many releases one notification reaches at once.
	concurrency = 8
	// MinTokenBytes is the shortest bearer token accepted: a guessable token would let anyone who
	// reaches the port abort releases.
	MinTokenBytes = 16
	// MaxTokenBytes bounds a bearer token.
	MaxTokenBytes = 4096
)

// Handler serves Alertmanager's webhook: POST a notification with "Authorization: Bearer TOKEN"; each
// firing alert with the service and environment labels aborts that release. The answer is 200 with a
// JSON Response (one result per alert) unless the request is refused (401, 400, 413) or Temporal could
// not be reached for some alert (503, so Alertmanager retries; an abort that did go through answers
// already_rolling_back on the retry).
type Handler struct {
	// Token is the bearer token callers must send; a Handler without one (or with one shorter than
	// MinTokenBytes) refuses every request.
	Token []byte
	// Labels name the release; empty fields default to "service" and "environment".
	Labels Labels
	// Releases reaches the releases; required.
	Releases Releases
	// Timeout bounds one notification; zero means DefaultTimeout. CallTimeout bounds each call to
	// Releases; zero means DefaultCallTimeout.
	Timeout, CallTimeout time.Duration
	// Observe, optional, counts each alert's outcome (by environment, "" when the alert has none).
	Observe func(environment string, outcome Outcome)
	// ObserveRequest, optional, counts each request by its status code.
	ObserveRequest func(code int)
	// Logger receives a line per alert acted on and, at most every refusalLogEvery, one for refused
	// requests (all are counted by ObserveRequest); nil discards. Tokens are never logged.
	Logger Logger

	refusals refusalLog
}

// refusalLogEvery bounds how often refused requests are logged, so a client guessing tokens cannot
// flood the worker's log.
const refusalLogEvery = 10 * time.Second

// refusalLog counts refused requests and says when one may be logged.
type refusalLog struct {
	mu     sync.Mutex
	last   time.Time
	counts int
}

// note counts a refusal; ok says to log it now, with n the refusals since the last line (this one included).
func (l *refusalLog) note(now time.Time) (n int, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.counts++
	if !l.last.IsZero() && now.Sub(l.last) < refusalLogEvery {
		return 0, false
	}
	n, l.last, l.counts = l.counts, now, 0
	return n, true
}

// Logger is what Handler logs to: a *slog.Logger or the Temporal SDK's log.Logger.
type Logger interface {
	Info(msg string, keyvals ...any)
	Warn(msg string, keyvals ...any)
}

// Response is the answer to a notification.
type Response struct {
	// Receiver and GroupKey echo the notification's.
	Receiver string `json:"receiver,omitempty"`
	GroupKey string `json:"groupKey,omitempty"`
	// Aborted counts the releases this notification aborted.
	Aborted int `json:"aborted"`
	// Results has one entry per alert, in the notification's order.
	Results []Result `json:"results"`
	// Error says why the request was refused (4xx, 5xx).
	Error string `json:"error,omitempty"`
}

// Result is what became of one alert.
type Result struct {
	AlertName   string  `json:"alertname,omitempty"`
	Fingerprint string  `json:"fingerprint,omitempty"`
	Service     string  `json:"service,omitempty"`
	Environment string  `json:"environment,omitempty"`
	Outcome     Outcome `json:"outcome"`
	// Message says why (ignored, rejected, unavailable) or what the release answered.
	Message string `json:"message,omitempty"`
	Phase   string `json:"phase,omitempty"`
}

func (h *Handler) logger() Logger {
	if h.Logger != nil {
		return h.Logger
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func (h *Handler) labels() Labels {
	l := h.Labels
	if l.Service == "" {
		l.Service = "service"
	}
	if l.Environment == "" {
		l.Environment = "environment"
	}
	return l
}

// authorized compares the bearer token in constant time (over digests, so the length leaks nothing
// either).
func (h *Handler) authorized(r *http.Request) bool {
	if len(h.Token) < MinTokenBytes {
		return false
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || len(got) > MaxTokenBytes {
		return false
	}
	a, b := sha256.Sum256([]byte(strings.TrimSpace(got))), sha256.Sum256(h.Token)
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

// ServeHTTP handles one notification.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.reply(w, http.StatusMethodNotAllowed, Response{Error: "POST an Alertmanager webhook notification"})
		return
	}
	if !h.authorized(r) {
		if n, ok := h.refusals.note(time.Now()); ok {
			h.logger().Warn("alert webhook: request refused: missing or wrong bearer token", "remote", r.RemoteAddr, "refusedSinceLastLog", n)
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="shepherd alerts"`)
		h.reply(w, http.StatusUnauthorized, Response{Error: "missing or wrong bearer token: give Alertmanager the token of " +
			"alerts.webhook (http_config.authorization.credentials_file)"})
		return
	}
	timeout := h.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	// The server bounds the headers; the body gets the notification's time bound (a server that cannot
	// set deadlines leaves it to MaxBodyBytes and the server's own timeouts).
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(timeout))
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		h.reply(w, http.StatusRequestEntityTooLarge, Response{Error: fmt.Sprintf("the notification is larger than %d bytes: "+
			"group these alerts by [alertname, service, environment] in the Alertmanager route, or set max_alerts", MaxBodyBytes)})
		return
	case err != nil:
		h.reply(w, http.StatusBadRequest, Response{Error: "reading the notification: " + err.Error()})
		return
	}
	p, err := Parse(body)
	var many *TooManyAlertsError
	switch {
	case errors.As(err, &many):
		h.reply(w, http.StatusRequestEntityTooLarge, Response{Error: err.Error()})
		return
	case err != nil:
		h.reply(w, http.StatusBadRequest, Response{Error: err.Error()})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	resp := h.Handle(ctx, p)
	code := http.StatusOK
	for _, res := range resp.Results {
		if res.Outcome == Unavailable {
			code = http.StatusServiceUnavailable
			resp.Error = "Temporal could not be reached for some alerts; retry (aborts that went through answer already_rolling_back)"
		}
	}
	h.reply(w, code, resp)
}

func (h *Handler) reply(w http.ResponseWriter, code int, resp Response) {
	if h.ObserveRequest != nil {
		h.ObserveRequest(code)
	}
	if resp.Results == nil {
		resp.Results = []Result{}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(resp)
}

// group is the firing alerts of one notification that name the same release.
type group struct {
	service, environment string
	idx                  []int
	targets              []Target
}

// Handle acts on a parsed notification: it ignores what does not abort, then reaches each named
// release once (several at a time), and answers for every alert in the notification's order.
func (h *Handler) Handle(ctx context.Context, p Payload) Response {
	resp := Response{Receiver: cutBytes(p.Receiver, 256), GroupKey: cutBytes(p.GroupKey, 1024), Results: make([]Result, len(p.Alerts))}
	labels := h.labels()
	var groups []*group
	byKey := map[[2]string]*group{}
	for i, a := range p.Alerts {
		t, why := Classify(a, labels)
		res := &resp.Results[i]
		res.AlertName, res.Fingerprint = cutBytes(printable(a.Labels["alertname"]), MaxBy), cutBytes(printable(a.Fingerprint), 64)
		if why != "" {
			res.Outcome, res.Message = Ignored, why
			if env := a.Labels[labels.Environment]; len(env) <= maxNameLen && nameRE.MatchString(env) {
				res.Environment = env
			}
			continue
		}
		res.Service, res.Environment = t.Service, t.Environment
		k := [2]string{t.Service, t.Environment}
		g := byKey[k]
		if g == nil {
			g = &group{service: t.Service, environment: t.Environment}
			byKey[k] = g
			groups = append(groups, g)
		}
		g.idx = append(g.idx, i)
		g.targets = append(g.targets, t)
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, concurrency)
	for _, g := range groups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
				defer func() { <-sem }()
				h.handleGroup(ctx, g, resp.Results)
			case <-ctx.Done():
				for _, i := range g.idx {
					resp.Results[i].Outcome, resp.Results[i].Message = Unavailable, "not handled in time: "+ctx.Err().Error()
				}
			}
		}()
	}
	wg.Wait()
	for i, res := range resp.Results {
		if res.Outcome == Aborted {
			resp.Aborted++
		}
		if h.Observe != nil {
			h.Observe(res.Environment, res.Outcome)
		}
		if res.Outcome != Ignored {
			h.logger().Info("alert webhook", "alertname", res.AlertName, "fingerprint", res.Fingerprint,
				"service", res.Service, "environment", res.Environment, "outcome", string(res.Outcome), "message", res.Message)
		} else if p.Alerts[i].Status == "firing" {
			h.logger().Info("alert webhook: firing alert ignored", "alertname", res.AlertName, "message", res.Message)
		}
	}
	return resp
}

// handleGroup reaches one release for the alerts that name it: the first alert that fired after the
// release started aborts it; the others are answered from that.
func (h *Handler) handleGroup(ctx context.Context, g *group, results []Result) {
	callTimeout := h.CallTimeout
	if callTimeout <= 0 {
		callTimeout = DefaultCallTimeout
	}
	dctx, cancel := context.WithTimeout(ctx, callTimeout)
	rel, err := h.Releases.Describe(dctx, g.service, g.environment)
	cancel()
	if err != nil {
		for _, i := range g.idx {
			results[i].Outcome, results[i].Message = Unavailable, "looking up the release: "+err.Error()
		}
		return
	}
	var sent *AbortResult
	var sentBy string
	for n, i := range g.idx {
		t, res := g.targets[n], &results[i]
		switch {
		case !rel.Running:
			res.Outcome, res.Message = NoActiveRelease, fmt.Sprintf("no release of %s is running in %s", g.service, g.environment)
			continue
		case !t.StartsAt.IsZero() && t.StartsAt.Before(rel.StartTime):
			// Alertmanager repeats a firing alert every repeat_interval: an alert older than the release did
			// not come from it, and must not abort the next release (the fix, say) while it keeps firing.
			res.Outcome = Ignored
			res.Message = fmt.Sprintf("the alert has fired since %s, before this release started (%s): it is not about this release",
				t.StartsAt.UTC().Format(time.RFC3339), rel.StartTime.UTC().Format(time.RFC3339))
			continue
		case sent != nil:
			res.Outcome, res.Phase = sent.Outcome, sent.Phase
			res.Message = sent.Message
			if sent.Outcome == Aborted {
				res.Outcome, res.Message = AlreadyRollingBack, "aborted by "+sentBy+" of the same notification"
			}
			continue
		}
		actx, cancel := context.WithTimeout(ctx, callTimeout)
		out, err := h.Releases.Abort(actx, AbortRequest{Service: g.service, Environment: g.environment, RunID: rel.RunID, By: t.By, Reason: t.Reason})
		cancel()
		if err != nil {
			res.Outcome, res.Message = Unavailable, "sending the abort: "+err.Error()
			continue // the next alert of the group tries again
		}
		res.Outcome, res.Message, res.Phase = out.Outcome, out.Message, out.Phase
		sent, sentBy = &out, t.By
	}
}
