#!/usr/bin/env bash
# The functions as Lambda runs them: `cargo lambda watch` serves them locally, `cargo lambda invoke` sends
# events from events/, against PostgreSQL ($DATABASE_URL's server) and moto ($AWS_ENDPOINT_URL).
# Run it through scripts/with-postgres.sh and scripts/with-moto.sh (make test does).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
: "${AWS_ENDPOINT_URL:?run through scripts/with-moto.sh}"
TOOLS=$ROOT/target/tools
. scripts/tools.sh
ensure_cargo_lambda
export PATH="$TOOLS/cargo-lambda/bin:$PATH"
PY=$TOOLS/moto/bin/python
[ -x "$PY" ] || PY=python3
PORT=${LAMBDA_PORT:-9055}
RUN=$(date +%s)-$$
BUCKET=recon-lambda-e2e-$RUN
DBNAME=recon_lambda_e2e_${RUN//-/_}
BASE=${DATABASE_URL%/*}
DB_URL=$BASE/$DBNAME
OUT=$ROOT/target/lambda-e2e
rm -rf "$OUT" && mkdir -p "$OUT"

cargo build -q -p match -p notify -p fetch-stripe
./target/debug/recon migrate --database-url "$DB_URL" >/dev/null
"$PY" scripts/lambda-e2e.py setup "$BUCKET"

cargo lambda watch --ignore-changes --invoke-address 127.0.0.1 --invoke-port "$PORT" \
  --env-var "AWS_S3_BUCKET_NAME=$BUCKET" --env-var "DATABASE_URL=$DB_URL" \
  --env-var "AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL" --env-var AWS_ACCESS_KEY_ID=test --env-var AWS_SECRET_ACCESS_KEY=test \
  --env-var AWS_REGION=us-east-1 --env-var SENDER_EMAIL=recon@example.com \
  --env-var "OPERATIONS_EMAIL=ops-$RUN@example.com" --env-var GRACE_DAYS=0 --env-var AWS_LAMBDA_LOG_FORMAT=JSON \
  >"$OUT/watch.log" 2>&1 &
watch=$!
cleanup() {
  kill "$watch" 2>/dev/null || true; wait "$watch" 2>/dev/null || true
  command -v psql >/dev/null && psql "$BASE/postgres" -qc "DROP DATABASE IF EXISTS $DBNAME WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.2; done

invoke() { cargo lambda invoke "$1" --invoke-address 127.0.0.1 --invoke-port "$PORT" --data-file "$2" >"$3" 2>"$3.err" || { cat "$3" "$3.err" >&2; echo "lambda-e2e: invoke $1 $2 failed" >&2; tail -n 40 "$OUT/watch.log" >&2; exit 1; }; }

invoke match events/match/demo-stripe.json "$OUT/match.json"
run1=$("$PY" scripts/lambda-e2e.py check-match "$OUT/match.json")
invoke match events/match/demo-stripe.json "$OUT/match-retry.json"
run2=$("$PY" scripts/lambda-e2e.py check-match "$OUT/match-retry.json")
[ "$run1" = "$run2" ] || { echo "lambda-e2e: a retried match recorded a second run ($run1, $run2)" >&2; exit 1; }
invoke match events/match/missing-ledger.json "$OUT/match-failed.json"
"$PY" scripts/lambda-e2e.py check-failed "$OUT/match-failed.json"
# one partition of a sharded run: a receipt, its outcome written to S3 under work/
invoke match events/match/demo-stripe-partition-0-of-2.json "$OUT/match-partition.json"
BUCKET="$BUCKET" "$PY" scripts/lambda-e2e.py check-partition "$OUT/match-partition.json"
invoke notify events/notify/high-and-failed.json "$OUT/notify.json"
"$PY" scripts/lambda-e2e.py check-mail "ops-$RUN@example.com"
invoke fetch-stripe events/fetch-stripe/scheduled.json "$OUT/fetch.json"
grep -q '"source":"file"' "$OUT/fetch.json" || { cat "$OUT/fetch.json" >&2; exit 1; }
# JSON logs whose run lines carry run id, processor and date; no secret in any line
"$PY" - "$OUT/watch.log" <<'PYEOF'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
runs = [l for l in lines if l.get("span", {}).get("name") == "run"]
assert runs, "no JSON log line inside a run span"
assert all({"run_id", "processor", "date"} <= set(l["span"]) for l in runs if l["fields"].get("message") == "run recorded"), runs[:2]
assert not any("AWS_SECRET_ACCESS_KEY" in json.dumps(l) for l in lines)
PYEOF
echo "lambda-e2e: 6 passed, 0 failed (match x2 idempotent, match failure, one match partition, notify via SES, fetch-stripe)"
