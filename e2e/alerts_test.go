package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shepherd-release/shepherd/internal/alerts"
	"github.com/shepherd-release/shepherd/internal/cli"
	"github.com/shepherd-release/shepherd/record"
)

// alertToken is the bearer token of the tests' alert webhook (alerts.webhook.tokenFile).
const alertToken = "e2e-alertmanager-token-0123456789"

// alertmanagerNotification is a notification as Alertmanager 0.27 posts it to a webhook_config, with
// every field it sends.
func alertmanagerNotification(alerts ...map[string]any) []byte {
	b, _ := json.Marshal(map[string]any{
		"receiver": "shepherd-abort", "status": "firing", "alerts": alerts,
		"groupLabels":       map[string]string{"alertname": "E2EHighErrorRate"},
		"commonLabels":      map[string]string{"alertname": "E2EHighErrorRate"},
		"commonAnnotations": map[string]string{},
		"externalURL":       "http://alertmanager:9093", "version": "4",
		"groupKey": `{}/{severity="page"}:{alertname="E2EHighErrorRate"}`, "truncatedAlerts": 0,
	})
	return b
}

// amAlert is one alert of a notification: status "firing" or "resolved", labels as key, value pairs.
func amAlert(status string, startsAt time.Time, labels ...string) map[string]any {
	l := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		l[labels[i]] = labels[i+1]
	}
	endsAt := "0001-01-01T00:00:00Z"
	if status == "resolved" {
		endsAt = time.Now().UTC().Format(time.RFC3339Nano)
	}
	return map[string]any{
		"status": status, "labels": l,
		"annotations": map[string]string{"summary": "5xx ratio above 5% for 1m", "runbook_url": "https://runbooks/e2e"},
		"startsAt":    startsAt.UTC().Format(time.RFC3339Nano), "endsAt": endsAt,
		"generatorURL": "http://prometheus:9090/graph?g0.expr=x", "fingerprint": "e2e0c0ffee",
	}
}

// postAlerts posts a notification to the worker's alert webhook as Alertmanager does.
func postAlerts(t *testing.T, w *workerProc, token string, body []byte) (int, alerts.Response) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+w.addr+"/alerts/abort", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Alertmanager/0.27.0")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("posting to the alert webhook: %v", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var out alerts.Response
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("the webhook answered %d with no JSON: %v\n%s", resp.StatusCode, err, raw)
	}
	return resp.StatusCode, out
}

// alertEnv is a release env whose worker serves the alert webhook, with signKey (when not "") as its
// signing key; the release of svc soaks stage 2 at 50% for 5 minutes when it returns.
func alertEnv(t *testing.T, svc string, configure func(e *tenv, webhook map[string]any)) (*tenv, *workerProc, time.Time, string) {
	t.Helper()
	e, _, log := newReleaseEnv(t, svc)
	tokenFile := filepath.Join(t.TempDir(), "alertmanager-token")
	if err := os.WriteFile(tokenFile, []byte(alertToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	webhook := e.provide("alerts", "webhook", map[string]any{"tokenFile": tokenFile})
	if configure != nil {
		configure(e, webhook)
	}
	dir := *e.lazy
	w := e.startWorker(dir)
	f := writeJSON(t, "release.json", execRelease(svc, stage(10, time.Second), stage(50, 5*time.Minute), stage(100, time.Second)))
	started := time.Now()
	wantExit(t, e.shepherdCLI("start", "-f", f), cli.ExitOK)
	e.waitStatus(svc, "soaking stage 2 at 50%", atStage(record.PhaseProgressing, 2, 50))
	return e, w, started, log
}

// TestAlertDrivenAbort: with alerts.webhook configured, a firing alert posted by Alertmanager with the
// release's service and environment labels rolls the release back at once, and the decision log names
// the alert and its labels. A wrong token, a resolved alert, an alert that fired before the release
// started, and one for another environment change nothing; a repeat after the rollback is answered, not
// an error.
func TestAlertDrivenAbort(t *testing.T) {
	const svc = "e2e-alert-abort"
	t.Parallel()
	e, w, started, log := alertEnv(t, svc, nil)
	firing := amAlert("firing", time.Now(), "alertname", "E2EHighErrorRate", "service", svc, "environment", envName, "severity", "page")

	if code, resp := postAlerts(t, w, "not-the-"+alertToken, alertmanagerNotification(firing)); code != http.StatusUnauthorized {
		t.Fatalf("wrong token: %d %+v", code, resp)
	}
	code, resp := postAlerts(t, w, alertToken, alertmanagerNotification(
		amAlert("resolved", time.Now(), "alertname", "E2EHighErrorRate", "service", svc, "environment", envName),
		amAlert("firing", started.Add(-time.Hour), "alertname", "E2EOldBurn", "service", svc, "environment", envName),
		amAlert("firing", time.Now(), "alertname", "E2EHighErrorRate", "service", svc, "environment", "staging"),
		amAlert("firing", time.Now(), "alertname", "E2ENoLabels")))
	if code != http.StatusOK || resp.Aborted != 0 || len(resp.Results) != 4 {
		t.Fatalf("alerts that must not abort: %d %+v", code, resp)
	}
	for i, want := range []alerts.Outcome{alerts.Ignored, alerts.Ignored, alerts.NoActiveRelease, alerts.Ignored} {
		if resp.Results[i].Outcome != want {
			t.Errorf("alert %d: %+v, want %s", i, resp.Results[i], want)
		}
	}
	// The webhook answers only once the release answered its abort update, so a status now shows any
	// abort it sent.
	if st, err := e.status(svc); err != nil || st.Phase != record.PhaseProgressing {
		t.Fatalf("after the wrong token and the alerts that do not abort: %s, %v", describe(st), err)
	}

	code, resp = postAlerts(t, w, alertToken, alertmanagerNotification(firing))
	if code != http.StatusOK || resp.Aborted != 1 || resp.Results[0].Outcome != alerts.Aborted {
		t.Fatalf("firing alert: %d %+v", code, resp)
	}
	res := e.waitResult(svc, 20*time.Second)
	if res.Phase != record.PhaseRolledBack || !strings.HasPrefix(res.Reason, "aborted by alertmanager:E2EHighErrorRate") {
		t.Fatalf("result: %s", describe(res))
	}
	var abort *record.Decision
	for i, d := range res.Decisions {
		if d.Kind == record.KindControl && d.By == "alertmanager:E2EHighErrorRate" {
			abort = &res.Decisions[i]
		}
	}
	if abort == nil || !strings.Contains(abort.Message, "abort by alertmanager:E2EHighErrorRate") {
		t.Fatalf("no abort by the alert in the decision log: %+v", res.Decisions)
	}
	for _, want := range []string{"alert E2EHighErrorRate firing since", "5xx ratio above 5% for 1m",
		`alertname="E2EHighErrorRate"`, `environment="production"`, `service="` + svc + `"`, `severity="page"`} {
		if !strings.Contains(abort.Comment, want) {
			t.Errorf("the abort's recorded reason lacks %q: %s", want, abort.Comment)
		}
	}
	wantLines(t, log, "deploy v2", "health v2", "traffic 10", "traffic 50", "traffic 0", "rollback v2")

	// Alertmanager repeats the notification: the release has ended, which is an answer, not a failure.
	code, resp = postAlerts(t, w, alertToken, alertmanagerNotification(firing))
	if code != http.StatusOK || resp.Results[0].Outcome != alerts.NoActiveRelease {
		t.Errorf("repeat after the rollback: %d %+v", code, resp)
	}
	metrics := httpGet(t, "http://"+w.addr+"/metrics")
	for _, want := range []string{
		`shepherd_alert_aborts_total{environment="production",outcome="aborted"} 1`,
		`shepherd_alert_aborts_total{environment="production",outcome="ignored"} 2`,
		`shepherd_alert_webhook_requests_total{code="401"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestAlertDrivenAbortSigned: where the operators require signatures (no unsigned environments) and
// trust the webhook's signing key, the alert-driven abort is recorded as signed by the key's principal,
// verified by the release's VerifyControl activity.
func TestAlertDrivenAbortSigned(t *testing.T) {
	const svc = "e2e-alert-signed"
	t.Parallel()
	key, line := sshKey(t, "alertmanager@e2e")
	e, w, _, _ := alertEnv(t, svc, func(e *tenv, webhook map[string]any) {
		signers := filepath.Join(t.TempDir(), "allowed_signers")
		if err := os.WriteFile(signers, []byte(line+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		e.approvals = map[string]any{"allowedSigners": signers}
		webhook["signingKeyFile"] = key
	})
	firing := amAlert("firing", time.Now(), "alertname", "E2EHighErrorRate", "service", svc, "environment", envName)
	if code, resp := postAlerts(t, w, alertToken, alertmanagerNotification(firing)); code != http.StatusOK || resp.Aborted != 1 {
		t.Fatalf("firing alert: %d %+v", code, resp)
	}
	res := e.waitResult(svc, 20*time.Second)
	if res.Phase != record.PhaseRolledBack {
		t.Fatalf("result: %s", describe(res))
	}
	if !hasDecision(res, record.KindControl, "alertmanager@e2e", "abort signed by alertmanager@e2e (verified, SHA256:") {
		t.Errorf("the abort is not recorded as signed by the webhook's key: %+v", res.Decisions)
	}
}

// get fetches url and returns its body.
func httpGet(t *testing.T, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	return string(b)
}
