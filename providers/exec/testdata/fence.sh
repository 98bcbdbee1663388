# fence.sh: source it first in every exec step that changes something:   . ./fence.sh && your-step
# It exits 79 (stale, refused) when SHEPHERD_STEP_SEQ is older than the newest seq this service has taken
# from the same release, or when the release is one the service has moved on from; it prints "repeat"
# when the same step runs again (a retry) and lets it converge again. The lock is held until the step's
# shell exits, so the check and the change are one. FENCE_DIR must live where the change lands (the host
# or system you deploy to), not on the worker: a retry may run on another worker.
f="${FENCE_DIR:?set FENCE_DIR}/$SHEPHERD_SERVICE"
mkdir -p "$FENCE_DIR" && exec 9>>"$f.lock" && flock 9 || exit 1
if [ "${SHEPHERD_STEP_SEQ:-0}" -gt 0 ]; then                  # 0: no token (a release from before fencing)
  read -r rel seq < "$f" 2>/dev/null || { rel=; seq=0; }
  if grep -qxF "$SHEPHERD_RELEASE_ID" "$f.superseded" 2>/dev/null ||
     { [ "$rel" = "$SHEPHERD_RELEASE_ID" ] && [ "$SHEPHERD_STEP_SEQ" -lt "$seq" ]; }; then
    echo "stale: $SHEPHERD_STEP seq $SHEPHERD_STEP_SEQ of $SHEPHERD_RELEASE_ID; newest is seq $seq of $rel" >&2
    exit 79
  fi
  if [ "$rel" = "$SHEPHERD_RELEASE_ID" ] && [ "$SHEPHERD_STEP_SEQ" -eq "$seq" ]; then
    echo "repeat: $SHEPHERD_STEP seq $seq was taken before; applying it again, idempotently"
  fi
  [ -z "$rel" ] || [ "$rel" = "$SHEPHERD_RELEASE_ID" ] || echo "$rel" >> "$f.superseded"
  echo "$SHEPHERD_RELEASE_ID $SHEPHERD_STEP_SEQ" > "$f.tmp" && mv "$f.tmp" "$f"
fi
