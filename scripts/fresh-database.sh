#!/usr/bin/env bash
# fresh-database.sh NAME CMD...: run CMD with DATABASE_URL naming database NAME on the same server as
# $DATABASE_URL, dropped first when it exists (recon creates it and migrates on first use). The benchmarks run
# on a database of their own so that their figures never depend on what other runs left: a 5M-row run of the
# same date, superseded by the bench's first run, made that run 3x slower.
set -euo pipefail
name=${1:?usage: fresh-database.sh NAME CMD...}; shift
case $name in *[!a-z0-9_]*) echo "fresh-database.sh: $name is not a plain database name" >&2; exit 2 ;; esac
url=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/recon}
query=${url#"${url%%\?*}"}
url=${url%%\?*}
base=${url%/*}
if [ "$base/$name" = "$url" ]; then
  echo "fresh-database.sh: $name is the DATABASE_URL's own database; not dropped" >&2; exit 2
fi
PGOPTIONS='--client-min-messages=warning' psql "$base/postgres$query" -qc "DROP DATABASE IF EXISTS $name WITH (FORCE)"
DATABASE_URL=$base/$name$query exec "$@"
