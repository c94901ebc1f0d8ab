#!/usr/bin/env bash
# Regenerate the locks in constraints/ (one per Python version, for Linux x86-64), which scripts/setup.sh installs
# with (`pip install -c constraints/py3XX.txt ...`). Needs uv (`pip install uv`, or the `lock` extra); it resolves
# every Python version from this one machine, without those interpreters.
#   bash scripts/machine/lock.sh              keep the locked versions, change only what pyproject.toml now requires
#   bash scripts/machine/lock.sh --upgrade    move everything to the newest release allowed (then run the suite!)
# The existing lock file is uv's preference, so a plain run is a no-op unless pyproject.toml changed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
command -v uv >/dev/null || { echo "lock.sh: needs uv (pip install uv)" >&2; exit 1; }
for v in 3.10 3.11 3.12 3.13; do
  out=constraints/py${v/./}.txt
  # a new Python version starts from the 3.11 lock's versions (the ones the suite passed with) where they exist
  [ -f "$out" ] || cp constraints/py311.txt "$out"
  uv pip compile pyproject.toml --extra dev constraints/torch.in --python-version "$v" \
      --python-platform x86_64-manylinux_2_28 --no-annotate --quiet \
      --custom-compile-command "bash scripts/machine/lock.sh" -o "$out" "$@"
  echo "lock.sh: $out ($(grep -c '==' "$out") pins)"
done
