#!/usr/bin/env bash
# Contract fuzzing: schemathesis (from PyPI, in a venv under target/) sends generated requests to
# a live `overseer serve` started here, checking every answer against /api/openapi.json: no 5xx,
# only documented statuses, content types and schemas.
#
#   bash scripts/contract-fuzz.sh            # default budget
#   MAX_EXAMPLES=200 bash scripts/contract-fuzz.sh
#   MAX_EXAMPLES=20 bash scripts/contract-fuzz.sh   # what CI runs (.ci/run), a few minutes
#
# Needs PostgreSQL as for the tests (DATABASE_URL's server; the database overseer_contract_fuzz
# is created), python3 with venv, and network access to PyPI on the first run.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET_DIR="${CARGO_TARGET_DIR:-target}"
VENV="$TARGET_DIR/contract-fuzz-venv"
MAX_EXAMPLES="${MAX_EXAMPLES:-50}"
PORT="${PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}"
SERVER="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/overseer}"
DB_URL="${SERVER%/*}/overseer_contract_fuzz"

[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
if [ ! -x "$VENV/bin/schemathesis" ]; then
    "$VENV/bin/pip" install --quiet 'schemathesis>=4,<5'
fi
if ! "$VENV/bin/python" -c 'import openapi_spec_validator' 2>/dev/null; then
    "$VENV/bin/pip" install --quiet 'openapi-spec-validator>=0.7,<1'
fi

cargo build --quiet
BIN="$TARGET_DIR/debug/overseer"
LOG="$TARGET_DIR/contract-fuzz-server.log"
DATABASE_URL="$DB_URL" OVERSEER_HTTP_ADDR="127.0.0.1:$PORT" OVERSEER_NODE_ID=contract-fuzz \
    OVERSEER_MAX_JSON_BODY_BYTES=1048576 OVERSEER_MAX_CSV_BODY_BYTES=1048576 \
    "$BIN" serve >"$LOG" 2>&1 &
PID=$!
trap 'kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do
    curl -fsS "http://127.0.0.1:$PORT/api/health" >/dev/null 2>&1 && break
    sleep 0.1
done

# The document itself must be valid before anything is checked against it.
curl -fsS "http://127.0.0.1:$PORT/api/openapi.json" -o "$TARGET_DIR/contract-fuzz-openapi.json"
"$VENV/bin/python" -c 'import json, sys
from openapi_spec_validator import validate
validate(json.load(open(sys.argv[1])))' "$TARGET_DIR/contract-fuzz-openapi.json"
echo "openapi.json: valid"

# Two jobs, so the id routes have something to find (and to pause, cancel, retry).
for _ in 1 2; do
    curl -fsS -X POST "http://127.0.0.1:$PORT/api/jobs" -H 'content-type: application/json' \
        -d '{"operation":"noop","params":{"latency_ms":50,"batch_size":1},"items":[{"customer_id":"1234567890","ad_group_id":"1"},{"customer_id":"1234567890","ad_group_id":"2"}]}' \
        >/dev/null
done

"$VENV/bin/schemathesis" run "http://127.0.0.1:$PORT/api/openapi.json" \
    --url "http://127.0.0.1:$PORT" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --exclude-path '/api/ws' --exclude-path '/api/jobs/{id}/ws' \
    --max-examples "$MAX_EXAMPLES" \
    --phases examples,coverage,fuzzing \
    --suppress-health-check all \
    --no-color
echo "contract fuzz: passed (server log: $LOG)"
