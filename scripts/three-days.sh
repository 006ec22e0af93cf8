#!/usr/bin/env bash
# three-days.sh: the README's worked example of items across days (README, "Working the exceptions"), on a
# database of its own (recon_days on the DATABASE_URL server, recreated) and a store in .recon/days: the demo
# day (events/demo) and two more Stripe days (events/days), with an operator's actions between them. With
# --screenshots, renders the 16th's report and the 18th's email to docs/ (scripts/screenshots.sh).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
: "${DATABASE_URL:=postgres://postgres@127.0.0.1:5432/recon}"
DAYS=$ROOT/.recon/days
export DATABASE_URL="${DATABASE_URL%/*}/recon_days" RECON_ACTOR=maria RECON_OUTBOX=$DAYS/outbox
admin="${DATABASE_URL%/*}/postgres"
psql -q "$admin" -c "DROP DATABASE IF EXISTS recon_days WITH (FORCE)"
rm -rf "$DAYS" && mkdir -p "$DAYS/inbox"
cp -r "$ROOT"/events/demo/inbox/* "$ROOT"/events/days/inbox/* "$DAYS/inbox/"
recon() { "$ROOT/target/debug/recon" "$@"; }
run() { echo "\$ recon run --date $1 --processors stripe --grace-days 0"; recon run --store "$DAYS" --date "$1" --processors stripe --grace-days 0 2>/dev/null | grep -E '^stripe  ' ; }
say() { echo "\$ recon $*"; recon "$@"; }
run 2025-01-15
say items --as-of 2025-01-15
say items ack 2 9
say items assign 8 --to priya
say items resolve 3 --reason duplicate_reversed --note "L-202501150013 reversed by JE-4471"
say items comment 1 --note "5.00 USD short: asked the ledger team"
run 2025-01-16
say items show 7 --as-of 2025-01-16
run 2025-01-18
say items --min-age 3 --as-of 2025-01-18
if [ "${1:-}" = "--screenshots" ]; then
  REPORT=$(ls "$DAYS"/reports/2025-01-16/stripe/*/report.html | head -n1) \
  EML=$(ls -t "$DAYS"/outbox/*.eml | head -n1) "$ROOT/scripts/screenshots.sh"
fi
