#!/usr/bin/env bash
# screenshots.sh: renders the newest demo report.html and the newest outbox email (its HTML part) to PNG with
# headless Chromium (Debian package `chromium`, installed when missing). Run `make run` first. REPORT and EML
# name other files (scripts/three-days.sh passes its own).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=$ROOT/docs
mkdir -p "$OUT"
command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
report=${REPORT:-$(ls -t "$ROOT"/.recon/store/reports/*/stripe/*/report.html | head -n1)}
eml=${EML:-$(ls -t "$ROOT"/.recon/outbox/*.eml | head -n1)}
python3 - "$eml" "$ROOT/target/email.html" <<'PY'
import email, sys
msg = email.message_from_binary_file(open(sys.argv[1], "rb"))
html = next(p for p in msg.walk() if p.get_content_type() == "text/html")
open(sys.argv[2], "wb").write(html.get_payload(decode=True))
PY
shot() {
  chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
    --disable-component-update --disable-sync --user-data-dir="$(mktemp -d)" --hide-scrollbars \
    --window-size=1200,"$3" --screenshot="$2" "file://$1" >/dev/null 2>&1
}
shot "$report" "$OUT/report.png" 1700
shot "$ROOT/target/email.html" "$OUT/email.png" 1300
echo "screenshots: $OUT/report.png $OUT/email.png"
