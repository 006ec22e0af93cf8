#!/usr/bin/env bash
# with-moto.sh CMD...: run CMD with moto server (AWS APIs: S3, SES v2, Secrets Manager, Step Functions) on
# 127.0.0.1:$MOTO_PORT (default 5000) and the AWS_* variables pointing at it. If one answers already it is
# used; otherwise moto (pinned) is installed into target/tools/moto and started, and stopped afterwards.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PORT=${MOTO_PORT:-5000}
VENV=$ROOT/target/tools/moto
MOTO_VERSION=5.2.5
answers() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }
pid=""
stop() { if [ -n "$pid" ]; then echo "with-moto: stopping moto server" >&2; kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi; }
trap stop EXIT
if ! answers; then
  if [ ! -x "$VENV/bin/moto_server" ]; then
    echo "with-moto: installing moto[server]==$MOTO_VERSION into $VENV" >&2
    mkdir -p "$ROOT/target/tools"
    python3 -m venv "$VENV" || { apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null && python3 -m venv "$VENV"; }
    "$VENV/bin/pip" install -q "moto[server]==$MOTO_VERSION"
  fi
  echo "with-moto: starting moto server on 127.0.0.1:$PORT" >&2
  "$VENV/bin/moto_server" -H 127.0.0.1 -p "$PORT" >"$ROOT/target/tools/moto.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do answers && break; sleep 0.1; done
  answers || { echo "with-moto: moto did not start; see target/tools/moto.log" >&2; exit 2; }
fi
export AWS_ENDPOINT_URL="http://127.0.0.1:$PORT" AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
export AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
"$@"
