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
workers=${FLASHVID_TEST_WORKERS:-$("$PY" scripts/xdist_workers.py)}
"$PY" -m pytest -ra -n "$workers" --dist loadgroup "$@" </dev/null || rc=$?
if [ "$rc" -eq 5 ]; then
  echo "test.sh: pytest collected no tests: that is a failure here" >&2
  exit 1
fi
exit "$rc"
