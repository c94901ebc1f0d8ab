#!/usr/bin/env bash
# Set up what is missing (scripts/setup.sh), then run the whole test suite. Arguments go to pytest,
# e.g. `bash scripts/test.sh -k cli -x`.
# The tests run in parallel on one pytest-xdist worker per core, 8 at most (FLASHVID_TEST_WORKERS=N sets the
# number, 0 runs them in this process); --dist loadgroup keeps each module whole on one worker, but for the modules
# that tests/conftest.py spreads test by test (SPREAD_MODULES).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-python3}
bash scripts/setup.sh
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
rc=0
# one worker per core this process may use: the cores it is pinned to, capped by a cgroup CPU quota (a container
# limited to 2 cores of a 64-core host sees 64 and would start 8 workers that fight over 2 cores), at most 8
workers=${FLASHVID_TEST_WORKERS:-$("$PY" - <<'PY'
import math, os
n = len(os.sched_getaffinity(0))
try:
    quota, period = open("/sys/fs/cgroup/cpu.max").read().split()
    if quota != "max":
        n = min(n, max(1, math.ceil(int(quota) / int(period))))
except (OSError, ValueError):
    pass
print(min(n, 8))
PY
)}
"$PY" -m pytest -ra -n "$workers" --dist loadgroup "$@" </dev/null || rc=$?
if [ "$rc" -eq 5 ]; then
  echo "test.sh: pytest collected no tests: that is a failure here" >&2
  exit 1
fi
exit "$rc"
