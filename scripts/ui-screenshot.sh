#!/usr/bin/env bash
# Reproduces docs/images/release-page.png and docs/images/release-list.png: a dev stack on spare ports
# with a fresh data directory, the example release waiting at its approval gate, and its page in the
# Temporal web UI opened with headless Chromium (scripts/ui-screenshot), which also checks that the page
# shows the release's story. Needs Chromium (Debian: apt-get install chromium); not part of CI.
#
#   scripts/ui-screenshot.sh            # from the repository root, after make tools
set -euo pipefail

port=${PORT:-17233}
ui=${UI_PORT:-18233}
chromium=${CHROMIUM:-chromium}
data=$(mktemp -d)
trap 'kill "$dev" 2>/dev/null || true; wait "$dev" 2>/dev/null || true; rm -rf "$data"' EXIT

make build >/dev/null
bin/shepherd dev --port "$port" --ui-port "$ui" --data-dir "$data" --state-dir "$data/state" --metrics-addr off >"$data/dev.log" 2>&1 &
dev=$!
export TEMPORAL_ADDRESS=127.0.0.1:$port
until grep -q "dev stack is up" "$data/dev.log"; do
  kill -0 "$dev" || { cat "$data/dev.log"; exit 1; }
  sleep 1
done

# One release that rolled back and one promoted, for the list; then one waiting at its gate.
bin/shepherd start -f examples/release-exec.yaml >/dev/null
until bin/shepherd status checkout --env staging 2>/dev/null | grep -q AwaitingApproval; do sleep 1; done
bin/shepherd abort checkout --env staging --reason "wrong build" >/dev/null
bin/shepherd watch checkout --env staging >/dev/null || true
bin/shepherd start -f examples/release-exec.yaml >/dev/null
until bin/shepherd status checkout --env staging 2>/dev/null | grep -q AwaitingApproval; do sleep 1; done
bin/shepherd approve checkout --env staging --stage 2 >/dev/null
bin/shepherd watch checkout --env staging >/dev/null
run=$(bin/shepherd start -f examples/release-exec.yaml -o json | sed -n 's/.*"runID": "\(.*\)".*/\1/p')
until bin/shepherd status checkout --env staging 2>/dev/null | grep -q AwaitingApproval; do sleep 1; done

go run ./scripts/ui-screenshot -chromium "$chromium" -height 860 -click "User Metadata" \
  -url "http://localhost:$ui/namespaces/default/workflows/release:checkout:staging/$run" \
  -want "Current Details" -want "phase AwaitingApproval" -want "Last decision: stage" \
  -want "shepherd approve checkout --env staging --stage 2" -out docs/images/release-page.png
go run ./scripts/ui-screenshot -chromium "$chromium" -height 560 \
  -url "http://localhost:$ui/namespaces/default/workflows" -want "Completed" -want "Failed" -want "Running" \
  -out docs/images/release-list.png
bin/shepherd abort checkout --env staging --reason "screenshot taken" >/dev/null
