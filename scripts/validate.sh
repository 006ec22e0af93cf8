#!/usr/bin/env bash
# validate.sh: the state machine definition (asl-validator from npm, statelint from PyPI) and the Terraform
# (checkov, plus python-hcl2 parsing every file, since checkov exits 0 on broken HCL). Pinned versions,
# installed into target/tools on first use. `terraform fmt/validate/plan` run in GitHub Actions.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
T=$ROOT/target/tools
mkdir -p "$T"
ASL=$ROOT/state-machines/reconciliation.asl.json
if [ ! -x "$T/npm/node_modules/.bin/asl-validator" ]; then
  echo "validate: installing asl-validator@4.0.0" >&2
  mkdir -p "$T/npm" && (cd "$T/npm" && npm install --silent --no-audit --no-fund asl-validator@4.0.0 >/dev/null)
fi
if [ ! -x "$T/statelint/bin/statelint" ]; then
  echo "validate: installing statelint==3.1.0" >&2
  python3 -m venv "$T/statelint" && "$T/statelint/bin/pip" install -q statelint==3.1.0
fi
if [ ! -x "$T/checkov/bin/checkov" ]; then
  echo "validate: installing checkov==3.3.30 and python-hcl2==8.1.4" >&2
  python3 -m venv "$T/checkov" && "$T/checkov/bin/pip" install -q checkov==3.3.30 python-hcl2==8.1.4
fi
"$T/npm/node_modules/.bin/asl-validator" --json-path "$ASL"
"$T/statelint/bin/statelint" "$ASL"
"$T/checkov/bin/python" "$ROOT/scripts/check_terraform.py" "$ROOT/terraform"
"$T/checkov/bin/checkov" -d "$ROOT/terraform" --compact --quiet --skip-download --framework terraform
echo "validate: state machine and terraform checks passed"
