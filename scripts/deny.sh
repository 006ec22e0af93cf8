#!/usr/bin/env bash
# deny.sh: the supply-chain checks that need only the crates registry: licenses we accept, no banned or wildcard dependencies,
# crates.io as the only source (deny.toml). Installs cargo-deny (pinned) under target/tools when missing.
# Advisories need the RustSec database from the internet: GitHub Actions runs `cargo deny check advisories`.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VERSION=0.18.9
BIN="$ROOT/target/tools/cargo-deny/bin/cargo-deny"
if ! [ -x "$BIN" ] || ! "$BIN" --version | grep -q " $VERSION"; then
  echo "deny: installing cargo-deny $VERSION into target/tools/cargo-deny" >&2
  cargo install --locked cargo-deny --version "$VERSION" --root "$ROOT/target/tools/cargo-deny" >&2
fi
cd "$ROOT"
"$BIN" --log-level error check licenses bans sources
echo "deny: licenses, bans and sources ok"
