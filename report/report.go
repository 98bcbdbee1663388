// Package report turns a release's record (every decision and measurement the workflow kept) into the
// release report: a JSON document for tools and a Markdown page for people, archived on disk by service
// and environment, and found again by release ID or workflow ID for `shepherd report RELEASE`. For
// releases that went wrong it also drafts the post-mortem record. Rendering is deterministic: the same
// record gives the same bytes, so archiving twice is harmless.
package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/shepherd-release/shepherd/record"
)

// SchemaVersion is the version of the JSON report layout; it changes only when a field changes meaning.
const SchemaVersion = 1

// Report is the JSON release report: the final record and the spec the release ran with.
type Report struct {
	SchemaVersion int `json:"schemaVersion"`
	// Release is the workflow's result: phase, reason, plan, decision log with evidence, timings.
	Release record.Result `json:"release"`
	// Spec is the release spec as JSON (with defaults, if the caller applied them), or absent.
	Spec json.RawMessage `json:"spec,omitempty"`
}

// Render builds the JSON report and the Markdown report of a release. specJSON is the release spec as
// JSON; it may be empty, but if given it must be valid JSON.
func Render(res record.Result, specJSON []byte) (jsonBytes, markdown []byte, err error) {
	spec, err := normalizeSpec(specJSON)
	if err != nil {
		return nil, nil, err
	}
	jsonBytes, err = encodeJSON(Report{SchemaVersion: SchemaVersion, Release: res, Spec: spec})
	if err != nil {
		return nil, nil, fmt.Errorf("encode report of release %s: %w", res.ReleaseID, err)
	}
	return jsonBytes, renderMarkdown(res, spec), nil
}

// normalizeSpec checks the spec is JSON and indents it, so the report reads well whatever the input.
func normalizeSpec(specJSON []byte) (json.RawMessage, error) {
	trimmed := bytes.TrimSpace(specJSON)
	if len(trimmed) == 0 || string(trimmed) == "null" {
		return nil, nil
	}
	if !json.Valid(trimmed) {
		return nil, errors.New("release spec for the report is not valid JSON; pass the spec as the workflow received it")
	}
	var b bytes.Buffer
	if err := json.Indent(&b, trimmed, "", "  "); err != nil {
		return nil, fmt.Errorf("release spec for the report: %w", err)
	}
	return b.Bytes(), nil
}

// encodeJSON writes indented JSON without HTML escaping (queries hold < and >), ending in a newline.
func encodeJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// NeedsPostMortem reports whether a release calls for a post-mortem: it rolled back or failed, or a
// person had to step in (pause, resume, abort), or it paused for a human (inconclusive analysis).
func NeedsPostMortem(res record.Result) bool {
	if res.Phase == record.PhaseRolledBack || res.Phase == record.PhaseFailed {
		return true
	}
	for _, d := range res.Decisions {
		if d.Kind == record.KindControl || d.Phase == record.PhasePaused {
			return true
		}
	}
	return false
}
