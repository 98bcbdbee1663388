// Package alerts turns Alertmanager's webhook notifications into aborts of the releases their firing
// alerts name: an SRE's existing alert (with labels service and environment) rolls a release back
// directly. It parses and bounds the payload, authenticates the caller and decides what each alert
// means; the releases themselves are reached through the Releases interface, which the worker implements
// over Temporal. No Temporal here, and nothing of ours above it.
package alerts

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Bounds of a notification. Alertmanager groups alerts by its route's group_by; a group with more alerts
// than MaxAlerts is refused with 413, so route these alerts with group_by [alertname, service,
// environment] (or set max_alerts in the webhook_config).
const (
	// MaxBodyBytes bounds a request body.
	MaxBodyBytes = 1 << 20
	// MaxAlerts bounds the alerts of one notification.
	MaxAlerts = 1000
	// maxNameLen bounds a service or environment label value: they are release names (spec rules).
	maxNameLen = 63
)

// Bounds of what an abort records (they fit the workflow's control-request bounds: "by" 128 bytes,
// "reason" 4 KiB).
const (
	// MaxBy bounds the abort's "by".
	MaxBy = 128
	// MaxReason bounds the abort's reason.
	MaxReason = 4096
	// ByPrefix starts the "by" of every alert-driven abort: "alertmanager:<alertname>".
	ByPrefix = "alertmanager"

	maxSummary     = 1024
	maxLabelValue  = 256
	maxLabelsShown = 32
)

// Payload is Alertmanager's webhook notification (version "4"); fields Shepherd does not use are not
// decoded.
type Payload struct {
	Version  string  `json:"version"`
	Receiver string  `json:"receiver"`
	Status   string  `json:"status"`
	GroupKey string  `json:"groupKey"`
	Alerts   []Alert `json:"alerts"`
	// TruncatedAlerts is how many alerts Alertmanager left out (webhook_config max_alerts).
	TruncatedAlerts int `json:"truncatedAlerts"`
}

// Alert is one alert of a notification.
type Alert struct {
	// Status is "firing" or "resolved"; only firing alerts abort.
	Status      string            `json:"status"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	// StartsAt is when the alert began firing.
	StartsAt     time.Time `json:"startsAt"`
	EndsAt       time.Time `json:"endsAt"`
	GeneratorURL string    `json:"generatorURL"`
	Fingerprint  string    `json:"fingerprint"`
}

// Parse decodes a notification and checks its bounds. Fields it does not know are ignored (Alertmanager
// adds some from time to time); a body that is not a notification at all is an error.
func Parse(body []byte) (Payload, error) {
	var raw struct {
		Payload
		Alerts *[]json.RawMessage `json:"alerts"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return Payload{}, fmt.Errorf("not an Alertmanager webhook notification: %v", err)
	}
	if raw.Alerts == nil {
		return Payload{}, errors.New(`not an Alertmanager webhook notification: no "alerts" list`)
	}
	if n := len(*raw.Alerts); n > MaxAlerts {
		return Payload{}, &TooManyAlertsError{N: n}
	}
	p := raw.Payload
	p.Alerts = make([]Alert, len(*raw.Alerts))
	for i, a := range *raw.Alerts {
		if err := json.Unmarshal(a, &p.Alerts[i]); err != nil {
			return Payload{}, fmt.Errorf("alerts[%d]: %v", i, err)
		}
	}
	return p, nil
}

// TooManyAlertsError is a notification with more than MaxAlerts alerts.
type TooManyAlertsError struct{ N int }

func (e *TooManyAlertsError) Error() string {
	return fmt.Sprintf("the notification holds %d alerts; the limit is %d: group these alerts by "+
		"[alertname, service, environment] in the Alertmanager route, or set max_alerts in the webhook_config", e.N, MaxAlerts)
}

// Labels names the labels that say which release an alert is about.
type Labels struct {
	Service, Environment string
}

// Target is the release a firing alert names, with what its abort records.
type Target struct {
	Service, Environment string
	// AlertName is the alert's alertname label ("" when it has none).
	AlertName string
	// By is "alertmanager:<alertname>", at most MaxBy bytes.
	By string
	// Reason carries the alert's name, summary and labels, sorted, at most MaxReason bytes.
	Reason   string
	StartsAt time.Time
}

var nameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// Classify says which release a firing alert names, or why the alert is ignored.
func Classify(a Alert, l Labels) (Target, string) {
	if a.Status != "firing" {
		return Target{}, fmt.Sprintf("status %s: only firing alerts abort", quoted(a.Status, 32))
	}
	svc, okS := a.Labels[l.Service]
	env, okE := a.Labels[l.Environment]
	switch {
	case !okS || !okE:
		return Target{}, fmt.Sprintf("no %s and %s labels: they name the release to abort", l.Service, l.Environment)
	case len(svc) > maxNameLen || !nameRE.MatchString(svc):
		return Target{}, fmt.Sprintf("label %s=%s is not a service name (1-%d lowercase letters, digits or '-')", l.Service, quoted(svc, 80), maxNameLen)
	case len(env) > maxNameLen || !nameRE.MatchString(env):
		return Target{}, fmt.Sprintf("label %s=%s is not an environment name (1-%d lowercase letters, digits or '-')", l.Environment, quoted(env, 80), maxNameLen)
	}
	name := printable(a.Labels["alertname"])
	by := ByPrefix
	if name != "" {
		by = cutBytes(ByPrefix+":"+name, MaxBy)
	}
	return Target{Service: svc, Environment: env, AlertName: name, By: by, Reason: reason(a, name), StartsAt: a.StartsAt}, ""
}

// reason is "alert NAME firing since T: SUMMARY; labels: k="v", ...", labels sorted by name, each value
// and the whole bounded, so the same alert always gives the same text.
func reason(a Alert, name string) string {
	var b strings.Builder
	b.WriteString("alert ")
	if name == "" {
		name = "(no alertname)"
	}
	b.WriteString(cutBytes(name, MaxBy))
	b.WriteString(" firing")
	if !a.StartsAt.IsZero() {
		b.WriteString(" since " + a.StartsAt.UTC().Format(time.RFC3339))
	}
	if s := printable(a.Annotations["summary"]); s != "" {
		b.WriteString(": " + cutBytes(s, maxSummary))
	}
	keys := make([]string, 0, len(a.Labels))
	for k := range a.Labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b.WriteString("; labels:")
	for i, k := range keys {
		if i == maxLabelsShown {
			fmt.Fprintf(&b, " (+%d more)", len(keys)-i)
			break
		}
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(" " + cutBytes(printable(k), maxLabelValue) + "=" + quoted(a.Labels[k], maxLabelValue))
	}
	return cutBytes(b.String(), MaxReason)
}

// quoted is s cut to n bytes, Go-quoted (so control characters and newlines show as escapes).
func quoted(s string, n int) string {
	return strconv.Quote(cutBytes(s, n))
}

// printable replaces control characters (newlines included) with spaces and trims s.
func printable(s string) string {
	return strings.TrimSpace(strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, "\uFFFD")))
}

// cutBytes shortens s to at most n bytes, on a rune boundary, ending in "…" when it cut.
func cutBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const mark = "…"
	n -= len(mark)
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + mark
}
