#!/usr/bin/env bash
# The whole state machine, end to end: moto (own instance, Step Functions execution on) interprets the real
# definition; its Lambda calls go through scripts/lambda_proxy.py to `cargo lambda watch`, which runs the
# real functions against moto (S3, SES) and PostgreSQL ($DATABASE_URL's server).
# Cases: the demo day succeeds and an email is recorded; a truncated Stripe page fails only Stripe's run and
# the email says so; the demo day with `partitions: 3` (Distributed Map of partitions + merge) gives the same runs. Run through scripts/with-postgres.sh (make test does); needs target/tools/moto and
# cargo-lambda (scripts/with-moto.sh and scripts/lambda-e2e.sh install them).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
T=$ROOT/target/tools
export PATH="$T/cargo-lambda/bin:$PATH"
PY=$T/moto/bin/python
MOTO=5010 PROXY=5011 WATCH=9056
RUN=$(date +%s)-$$
BUCKET=recon-sfn-e2e-$RUN
DBNAME=recon_sfn_e2e_${RUN//-/_}
BASE=${DATABASE_URL%/*}
DB_URL=$BASE/$DBNAME
OUT=$ROOT/target/sfn-e2e
rm -rf "$OUT" && mkdir -p "$OUT"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  command -v psql >/dev/null && psql "$BASE/postgres" -qc "DROP DATABASE IF EXISTS $DBNAME WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT
up() { for _ in $(seq 1 150); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.2; done; echo "sfn-e2e: port $1 never opened" >&2; return 1; }

MOTO_PORT=$PROXY "$T/moto/bin/moto_server" -H 127.0.0.1 -p $MOTO >"$OUT/moto.log" 2>&1 & pids+=($!)
"$PY" scripts/lambda_proxy.py $PROXY $MOTO $WATCH >"$OUT/proxy.log" 2>&1 & pids+=($!)
up $MOTO; up $PROXY
export AWS_ENDPOINT_URL=http://127.0.0.1:$MOTO AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
cargo build -q -p fetch-stripe -p fetch-paypal -p fetch-square -p fetch-ledger -p match -p notify
./target/debug/recon migrate --database-url "$DB_URL" >/dev/null
"$PY" scripts/sfn-e2e.py setup "$BUCKET"
cargo lambda watch --ignore-changes --invoke-address 127.0.0.1 --invoke-port $WATCH \
  --env-var "AWS_S3_BUCKET_NAME=$BUCKET" --env-var "DATABASE_URL=$DB_URL" \
  --env-var "AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL" --env-var AWS_ACCESS_KEY_ID=test --env-var AWS_SECRET_ACCESS_KEY=test \
  --env-var AWS_REGION=us-east-1 --env-var SENDER_EMAIL=recon@example.com \
  --env-var "OPERATIONS_EMAIL=ops-sfn-$RUN@example.com" --env-var GRACE_DAYS=0 \
  >"$OUT/watch.log" 2>&1 & pids+=($!)
up $WATCH

"$PY" scripts/sfn-e2e.py run "demo-$RUN" '{"date":"2025-01-15"}' >"$OUT/demo.json"
"$PY" - "$OUT/demo.json" <<'PYEOF'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["status"] == "SUCCEEDED", r
runs = {x["processor"]: x for x in r["output"]["runs"]}
assert set(runs) == {"stripe", "paypal", "square"}, runs.keys()
assert all(x["status"] == "succeeded" for x in runs.values()), runs
assert runs["stripe"]["total_discrepancy_amount"] == {"USD": "4478.00"}, runs["stripe"]
assert r["output"]["notification"]["message"]["skipped"] is False, r["output"]["notification"]
PYEOF
"$PY" scripts/sfn-e2e.py run "truncated-$RUN" '{"date":"2025-01-16"}' >"$OUT/truncated.json"
"$PY" - "$OUT/truncated.json" "$AWS_ENDPOINT_URL" "ops-sfn-$RUN@example.com" <<'PYEOF'
import json, sys, urllib.request
r = json.load(open(sys.argv[1]))
assert r["status"] == "SUCCEEDED", r
runs = {x["processor"]: x for x in r["output"]["runs"]}
assert runs["stripe"]["status"] == "failed" and "page-00002.json" in runs["stripe"]["error"], runs["stripe"]
assert runs["paypal"]["status"] == "succeeded" and runs["square"]["status"] == "succeeded", runs
data = json.load(urllib.request.urlopen(sys.argv[2] + "/moto-api/data.json"))
mails = [m.get("raw_data", "") for m in data["ses"]["RawMessage"] if sys.argv[3] in json.dumps(m)]
assert len(mails) == 2, len(mails)
last = mails[-1].replace("=\r\n", "").replace("=\n", "")
assert "FAILED for stripe" in last and "page-00002.json" in last, last[:3000]
PYEOF
# the same day sharded: each processor's match as a Distributed Map of 3 partitions and a merge; the same figures
"$PY" scripts/sfn-e2e.py run "sharded-$RUN" '{"date":"2025-01-15","partitions":3}' >"$OUT/sharded.json"
"$PY" - "$OUT/demo.json" "$OUT/sharded.json" <<'PYEOF'
import json, sys
whole, sharded = (json.load(open(f)) for f in sys.argv[1:3])
assert sharded["status"] == "SUCCEEDED", sharded
import re
def runs(r):
    # warnings name staged keys, whose fetch ids differ from execution to execution
    fid = lambda w: re.sub(r"/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/", "/<fetch_id>/", w)
    return {x["processor"]: {k: ([fid(w) for w in v] if k == "warnings" else v) for k, v in x.items() if k != "run_id"}
            for x in r["output"]["runs"]}
assert runs(sharded) == runs(whole), (runs(sharded), runs(whole))
assert all(any("venmo" in w for w in x["warnings"]) for x in runs(sharded).values()), runs(sharded)
assert all(x["status"] == "succeeded" for x in runs(sharded).values()), runs(sharded)
PYEOF
# a name that is no processor: its match fails, and the email still goes out (Notify never stops on it; were it
# to fail, NotifyFailure finds what it reads in Summarize's output)
"$PY" scripts/sfn-e2e.py run "venmo-$RUN" '{"date":"2025-01-15","processors":["stripe","venmo"]}' >"$OUT/venmo.json"
# no ledger at all for the day: FetchLedger fails and its Catch, NotifyFailure, emails every processor's failure
"$PY" scripts/sfn-e2e.py run "noledger-$RUN" '{"date":"2025-01-17"}' >"$OUT/noledger.json"
"$PY" - "$OUT/venmo.json" "$OUT/noledger.json" "$AWS_ENDPOINT_URL" "ops-sfn-$RUN@example.com" <<'PYEOF'
import json, sys, urllib.request
venmo, noledger = (json.load(open(f)) for f in sys.argv[1:3])
assert venmo["status"] == "SUCCEEDED", venmo
assert venmo["output"]["notification"]["message"]["skipped"] is False, venmo["output"]
assert noledger["status"] == "FAILED", noledger
data = json.load(urllib.request.urlopen(sys.argv[3] + "/moto-api/data.json"))
mails = [m.get("raw_data", "").replace("=\r\n", "").replace("=\n", "") for m in data["ses"]["RawMessage"] if sys.argv[4] in json.dumps(m)]
assert any("venmo: NOT RECONCILED" in m for m in mails), [m[:300] for m in mails]
assert sum("2025-01-17" in m and "FAILED" in m for m in mails) == 1, [m[:300] for m in mails]
PYEOF
echo "sfn-e2e: 5 passed, 0 failed (demo day through the state machine; truncated Stripe page fails only Stripe; sharded = whole; an unknown processor still emails; a failed ledger fetch emails through NotifyFailure)"
