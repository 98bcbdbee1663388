// Package notify tells people what a release is doing: a Slack-compatible incoming webhook or a generic
// JSON webhook, one message per release event. It is plain Go (no Temporal imports): the activity around
// Send adds retries, and the idempotency key Send puts on every request lets a receiver drop the duplicate
// a retry after a worker crash would otherwise post.
package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/shepherd-release/shepherd/internal/redact"
	"github.com/shepherd-release/shepherd/internal/safehttp"
	"github.com/shepherd-release/shepherd/record"
	"github.com/shepherd-release/shepherd/spec"
)

// Notifier types.
const (
	// TypeSlack posts {"text": ...} to a Slack-compatible incoming webhook (Slack, Mattermost, Rocket.Chat).
	TypeSlack = "slack"
	// TypeWebhook posts the event as JSON, with the rendered message in "text".
	TypeWebhook = "webhook"
)

// DefaultTimeout bounds one request when Config.Timeout is zero.
const DefaultTimeout = 10 * time.Second

// ErrPermanent marks an error that retrying will not fix (a 4xx answer, invalid configuration, a missing
// URL variable): the caller should give up and record it rather than retry.
var ErrPermanent = errors.New("permanent notification failure")

// EventKind says what happened to the release.
type EventKind string

// Event kinds, one per moment worth telling people about.
const (
	KindStarted        EventKind = "started"
	KindStageEntered   EventKind = "stageEntered"
	KindApprovalNeeded EventKind = "approvalNeeded"
	KindAnalysisFailed EventKind = "analysisFailed"
	KindRolledBack     EventKind = "rolledBack"
	KindSucceeded      EventKind = "succeeded"
	KindRollbackFailed EventKind = "rollbackFailed"
	KindRollbackStuck  EventKind = "rollbackStuck"
	KindPostMortem     EventKind = "postMortem"
)

// Kinds lists every event kind, in the order they usually happen.
var Kinds = []EventKind{
	KindStarted, KindStageEntered, KindApprovalNeeded, KindAnalysisFailed,
	KindRolledBack, KindSucceeded, KindRollbackStuck, KindRollbackFailed, KindPostMortem,
}

// Known reports whether k is one of Kinds.
func (k EventKind) Known() bool {
	for _, v := range Kinds {
		if k == v {
			return true
		}
	}
	return false
}

// Event is one notification. Its JSON form is what a generic webhook receives, so field names are wire
// contract; the ID keys match record.Status.
type Event struct {
	Kind            EventKind `json:"kind"`
	ReleaseID       string    `json:"releaseID"`
	WorkflowID      string    `json:"workflowID"`
	Service         string    `json:"service"`
	Environment     string    `json:"environment"`
	Version         string    `json:"version"`
	PreviousVersion string    `json:"previousVersion,omitempty"`
	// Stage is the 1-based stage number, 0 before the first stage.
	Stage int `json:"stage,omitempty"`
	// Percent is the traffic share of the new version the event is about.
	Percent int `json:"percent"`
	// Message is the cause or detail in one or a few lines (the rollback reason, the report path, ...).
	Message string `json:"message,omitempty"`
	// Evidence holds the measurements behind the event (the failing checks of a rollback).
	Evidence []record.Measurement `json:"evidence,omitempty"`
	// ApproveCommand and AbortCommand are the exact commands a person runs to steer an approval gate.
	ApproveCommand string    `json:"approveCommand,omitempty"`
	AbortCommand   string    `json:"abortCommand,omitempty"`
	Time           time.Time `json:"time"`
}

// IdempotencyKey is the key Send uses when given none: one per release, event kind and stage, so a retried
// activity repeats the key and the receiver can drop the duplicate.
func IdempotencyKey(e Event) string {
	return fmt.Sprintf("%s/%s/%d", e.ReleaseID, e.Kind, e.Stage)
}

// Config says where notifications go. Webhook URLs are secrets and the spec is stored in workflow history,
// so prefer URLEnv, which names an environment variable of the worker holding the URL.
type Config struct {
	// Type is "slack" or "webhook".
	Type string `json:"type"`
	// URL is the webhook URL. Give URL or URLEnv, not both.
	URL string `json:"url,omitempty"`
	// URLEnv names an environment variable of the worker that holds the webhook URL.
	URLEnv string `json:"urlEnv,omitempty"`
	// Templates override the message of an event kind with a Go text/template over Event; see DefaultTemplates
	// and the functions "evidence", "measurement", "value" and "threshold".
	Templates map[EventKind]string `json:"templates,omitempty"`
	// Events limits the kinds sent; empty sends every kind.
	Events []EventKind `json:"events,omitempty"`
	// Timeout bounds one request; default 10s.
	Timeout spec.Duration `json:"timeout,omitempty"`
}

// Validate checks the configuration without resolving secrets, so it can run while validating a spec.
func (c Config) Validate() error {
	var problems []string
	switch c.Type {
	case TypeSlack, TypeWebhook:
	case "":
		problems = append(problems, fmt.Sprintf("type is required: %q or %q", TypeSlack, TypeWebhook))
	default:
		problems = append(problems, fmt.Sprintf("unknown type %q: want %q or %q", c.Type, TypeSlack, TypeWebhook))
	}
	switch {
	case c.URL == "" && c.URLEnv == "":
		problems = append(problems, "url or urlEnv is required (urlEnv keeps the secret URL out of workflow history)")
	case c.URL != "" && c.URLEnv != "":
		problems = append(problems, "give url or urlEnv, not both")
	case c.URL != "":
		if err := checkURL(c.URL); err != nil {
			problems = append(problems, "url "+err.Error())
		}
	}
	for _, k := range slices.Sorted(maps.Keys(c.Templates)) { // sorted: the same config, the same message
		t := c.Templates[k]
		if !k.Known() {
			problems = append(problems, fmt.Sprintf("templates: unknown event kind %q", k))
			continue
		}
		if _, err := parseTemplate(k, t); err != nil {
			problems = append(problems, fmt.Sprintf("templates.%s: %v", k, err))
		}
	}
	for _, k := range c.Events {
		if !k.Known() {
			problems = append(problems, fmt.Sprintf("events: unknown event kind %q", k))
		}
	}
	if c.Timeout < 0 {
		problems = append(problems, "timeout must not be negative")
	}
	if len(problems) > 0 {
		return fmt.Errorf("invalid notification config: %s", strings.Join(problems, "; "))
	}
	return nil
}

// Wants reports whether the configuration sends events of kind k.
func (c Config) Wants(k EventKind) bool {
	if len(c.Events) == 0 {
		return true
	}
	for _, v := range c.Events {
		if v == k {
			return true
		}
	}
	return false
}

// Send renders the event and posts it to the configured webhook, with the Idempotency-Key header set to
// idempotencyKey (IdempotencyKey(event) when empty). Events whose kind the config does not want are
// skipped. Errors wrapping ErrPermanent must not be retried; any other error is worth retrying.
// Errors never contain the webhook URL's path or query, where webhook secrets live.
func Send(ctx context.Context, cfg Config, event Event, idempotencyKey string) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("%w: %v", ErrPermanent, err)
	}
	if !cfg.Wants(event.Kind) {
		return nil
	}
	if !event.Kind.Known() {
		return fmt.Errorf("%w: unknown event kind %q", ErrPermanent, event.Kind)
	}
	target, err := cfg.resolveURL()
	if err != nil {
		return err
	}
	text, err := Message(cfg, event)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrPermanent, err)
	}
	var body []byte
	if cfg.Type == TypeSlack {
		body, err = json.Marshal(slackPayload{Text: text})
	} else {
		body, err = json.Marshal(webhookPayload{Event: event, Text: text})
	}
	if err != nil {
		return fmt.Errorf("%w: encode %s event: %v", ErrPermanent, event.Kind, err)
	}
	if idempotencyKey == "" {
		idempotencyKey = IdempotencyKey(event)
	}
	timeout := cfg.Timeout.D()
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return post(ctx, cfg.Type, target, body, idempotencyKey, event.Kind)
}

type slackPayload struct {
	Text string `json:"text"`
}

// webhookPayload is the event with its rendered message, so chat-like receivers can show "text" as is.
type webhookPayload struct {
	Event
	Text string `json:"text"`
}

// resolveURL returns the webhook URL, reading URLEnv on the worker.
func (c Config) resolveURL() (string, error) {
	if c.URL != "" {
		return c.URL, nil
	}
	redact.Names(c.URLEnv) // the URL is the credential
	v := strings.TrimSpace(os.Getenv(c.URLEnv))
	if v == "" {
		return "", fmt.Errorf("%w: environment variable %s (urlEnv) is unset or empty on the worker; "+
			"set it to the webhook URL and restart the worker", ErrPermanent, c.URLEnv)
	}
	if err := checkURL(v); err != nil {
		return "", fmt.Errorf("%w: environment variable %s (urlEnv) %v", ErrPermanent, c.URLEnv, err)
	}
	return v, nil
}

// checkURL accepts absolute http(s) URLs; its message never repeats the URL.
func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("must be an absolute http:// or https:// URL")
	}
	return nil
}

// redact names a destination without the path, query or user info, where webhook secrets live.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "the webhook"
	}
	return u.Scheme + "://" + u.Host
}

func post(ctx context.Context, typ, target string, body []byte, key string, kind EventKind) error {
	where := fmt.Sprintf("%s notification %s to %s", typ, kind, redactURL(target))
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%w: %s: build request: invalid URL", ErrPermanent, where)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "shepherd-notify")
	req.Header.Set("Idempotency-Key", key)
	req.Header.Set("X-Shepherd-Event", string(kind))
	resp, err := safehttp.Client.Do(req)
	if err != nil {
		// *url.Error repeats the full URL; keep only the operation's cause.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return fmt.Errorf("%s: %w (will retry)", where, err)
	}
	defer resp.Body.Close()
	snippet := readSnippet(resp.Body)
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusRequestTimeout:
		return fmt.Errorf("%s: HTTP %d%s (rate limited or timed out; will retry)", where, resp.StatusCode, snippet)
	case resp.StatusCode >= 500:
		return fmt.Errorf("%s: HTTP %d%s (receiver error; will retry)", where, resp.StatusCode, snippet)
	default:
		return fmt.Errorf("%w: %s: HTTP %d%s: the receiver refused the request; check the webhook URL "+
			"and that the receiver accepts this payload", ErrPermanent, where, resp.StatusCode, snippet)
	}
}

// readSnippet returns the start of a response body on one line, for error messages (Slack answers with a
// short code such as "invalid_payload" or "no_service").
func readSnippet(r io.Reader) string {
	b, _ := io.ReadAll(io.LimitReader(r, 200))
	_, _ = io.Copy(io.Discard, io.LimitReader(r, 1<<16))
	s := strings.Join(strings.Fields(redact.String(string(b))), " ")
	if s == "" {
		return ""
	}
	return " " + fmt.Sprintf("%q", s)
}
