#!/usr/bin/env bash
# Starts a real S3-compatible server on a free loopback port for the ecci-files
# S3 tests, and prints the variables they read, as shell `export` lines:
#
#     eval "$(bash .ci/start-s3.sh)"
#     cargo test -p ecci-files --all-features --test s3
#     kill "$ECCI_TEST_S3_PID"
#
# The server is s3s-fs from crates.io: a file-system S3 store on the s3s
# framework, which verifies SigV4 signatures (presigned query strings
# included) and their expiry, and serves Range requests. It is built once with
# `cargo install --locked` into $ECCI_TOOLS (default ~/.cache/ecci-tools) and
# reused while its version matches. Diagnostics go to stderr; only the
# exports go to stdout.
set -euo pipefail

S3S_VERSION=0.14.1 # 0.15+ needs a newer rustc than the workspace's toolchain.
TOOLS="${ECCI_TOOLS:-$HOME/.cache/ecci-tools}"
BIN="$TOOLS/bin/s3s-fs"
ACCESS_KEY=ecci-test-access
SECRET_KEY="ecci-test-secret-$$-$RANDOM$RANDOM"
BUCKET=ecci-test

log() { echo "start-s3: $*" >&2; }

if ! "$BIN" --version 2>/dev/null | grep -qF " $S3S_VERSION"; then
    log "installing s3s-fs $S3S_VERSION into $TOOLS"
    start=$SECONDS
    cargo install --quiet --locked --force "s3s-fs@$S3S_VERSION" --features binary --root "$TOOLS" >&2
    log "installed in $((SECONDS - start)) s"
fi

DATA="$(mktemp -d "${TMPDIR:-/tmp}/ecci-s3.XXXXXX")"
mkdir "$DATA/objects" "$DATA/objects/$BUCKET"
LOG="$DATA/server.log"

# Port 0: the server picks a free port and logs it, so no port can be taken
# between choosing and binding. NO_COLOR and a file keep the log plain.
NO_COLOR=1 RUST_LOG=info setsid "$BIN" --host 127.0.0.1 --port 0 \
    --access-key "$ACCESS_KEY" --secret-key "$SECRET_KEY" "$DATA/objects" \
    >"$LOG" 2>&1 </dev/null &
PID=$!

ENDPOINT=""
for _ in $(seq 1 100); do
    ENDPOINT="$(grep -oE 'http://127\.0\.0\.1:[0-9]+' "$LOG" | head -n1 || true)"
    [ -n "$ENDPOINT" ] && break
    if ! kill -0 "$PID" 2>/dev/null; then
        log "s3s-fs exited early:"
        cat "$LOG" >&2
        exit 1
    fi
    sleep 0.1
done
if [ -z "$ENDPOINT" ]; then
    log "s3s-fs did not report its address within 10 s:"
    cat "$LOG" >&2
    kill "$PID" 2>/dev/null || true
    exit 1
fi
log "s3s-fs (pid $PID) serves $DATA/objects at $ENDPOINT"

cat <<EOF
export ECCI_TEST_S3=$ENDPOINT
export ECCI_TEST_S3_ACCESS_KEY=$ACCESS_KEY
export ECCI_TEST_S3_SECRET_KEY=$SECRET_KEY
export ECCI_TEST_S3_BUCKET=$BUCKET
export ECCI_TEST_S3_REGION=us-east-1
export ECCI_TEST_S3_PID=$PID
export ECCI_TEST_S3_DATA=$DATA
EOF
