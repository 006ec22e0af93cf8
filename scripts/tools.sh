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
