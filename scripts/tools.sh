# Sourced by the test scripts: pinned tools installed under target/tools on first use.
CL_VERSION=1.9.2
ensure_cargo_lambda() {
  local tools
  tools=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/target/tools
  if [ ! -x "$tools/cargo-lambda/bin/cargo-lambda" ]; then
    echo "installing cargo-lambda==$CL_VERSION into $tools/cargo-lambda" >&2
    mkdir -p "$tools" && python3 -m venv "$tools/cargo-lambda" && "$tools/cargo-lambda/bin/pip" install -q "cargo-lambda==$CL_VERSION"
  fi
}

# What an end-to-end script started (append each background pid to `pids`) is stopped on exit, and its
# database ($BASE/$DBNAME) dropped: `pids=(); trap stop_started EXIT`.
stop_started() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  command -v psql >/dev/null && psql "$BASE/postgres" -qc "DROP DATABASE IF EXISTS $DBNAME WITH (FORCE)" >/dev/null 2>&1 || true
}

# Waits up to 30 s for 127.0.0.1:PORT to accept connections.
up() {
  for _ in $(seq 1 150); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.2; done
  echo "$(basename "$0"): port $1 never opened" >&2
  return 1
}
