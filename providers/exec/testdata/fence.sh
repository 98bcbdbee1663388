# fence.sh: source it first in every exec step that changes something:   . ./fence.sh && your-step
# It exits 79 (stale, refused) when SHEPHERD_STEP_SEQ is older than the newest seq this service has taken
# from the same release, or when the release is one the service has moved on from; it prints "repeat"
# when the same step runs again (a retry) and lets it converge again. The lock is held until the step's
# shell exits, so the check and the change are one. A retry may run on another worker, so FENCE_DIR must
# be shared by every worker that runs the service's steps (a file system with working flock), never local.
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
  fence_take() { echo "$SHEPHERD_RELEASE_ID $SHEPHERD_STEP_SEQ" > "$f.tmp" && mv "$f.tmp" "$f"; }
  if [ -z "$rel" ] || [ "$rel" = "$SHEPHERD_RELEASE_ID" ]; then
    fence_take                                        # taken before the change: older attempts are now stale
  else                                                # another release takes over only if its step succeeds
    trap 'st=$?; [ $st -ne 0 ] || { echo "$rel" >> "$f.superseded"; fence_take; }; exit $st' EXIT
  fi
fi
