#!/usr/bin/env bash
# Does flashvid work with the newest releases? Builds a fresh virtual environment (in VENV, default
# /tmp/flashvid-latest, replaced), installs flashvid there through scripts/setup.sh WITHOUT the lock (the newest
# versions pyproject.toml allows; torch and torchvision as setup.sh pins them), prints the versions that matter,
# and runs the test suite. Arguments go to pytest. Record the result in docs/installs.md.
#   bash scripts/machine/check_latest.sh            newest releases
#   bash scripts/machine/check_latest.sh --lock     the same in a fresh environment, but with this Python's lock
# PYTHON picks the interpreter the environment is made from (default: python3).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
LOCK=none
if [ "${1:-}" = --lock ]; then LOCK=""; shift; fi
VENV=${VENV:-/tmp/flashvid-latest}
rm -rf "$VENV"
"${PYTHON:-python3}" -m venv "$VENV"
echo "check_latest: fresh environment $VENV ($("$VENV/bin/python" -V)), $(date -u '+%Y-%m-%d %H:%M UTC')"
FLASHVID_LOCK=$LOCK FLASHVID_SETUP_LOG="$VENV/setup.log" PYTHON="$VENV/bin/python" bash scripts/setup.sh
"$VENV/bin/python" - <<'PY'
import importlib.metadata as md
names = ["torch", "torchvision", "torchcodec", "av", "lightning", "torchmetrics", "transformers", "kornia",
         "hydra-core", "pytorchvideo", "numpy", "pytest", "ruff", "mypy"]
print("check_latest: " + ", ".join(f"{n} {md.version(n)}" for n in names))
PY
export PYTHONPATH="$PWD"
rc=0
"$VENV/bin/python" -m pytest -q -ra -p no:cacheprovider -n "${FLASHVID_TEST_WORKERS:-$("$VENV/bin/python" scripts/xdist_workers.py)}" --dist loadgroup "$@" \
  </dev/null || rc=$?
echo "check_latest: pytest exit status $rc"
exit "$rc"
