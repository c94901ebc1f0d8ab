#!/usr/bin/env bash
# How fast the command line answers before any work: `flashvid --help`, `flashvid train --help` and a config
# mistake (which must fail with its message, exit status 2). Prints the wall time of each (best of 3, so a busy
# machine's noise counts less) and the CPU time it took (what the wall time is on an idle machine); the
# target is under 1 s. Uses `python -m flashvid` from this checkout.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
"${PYTHON:-python3}" - <<'PY'
import resource
import subprocess
import sys
import time

cases = [("flashvid --help", ["--help"], 0), ("flashvid train --help", ["train", "--help"], 0),
         ("flashvid train model.learnin_rate=1 (a mistake)", ["train", "model.learnin_rate=1"], 2)]
for name, args, status in cases:
    best = cpu_best = float("inf")
    for _ in range(3):
        start, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
        proc = subprocess.run([sys.executable, "-m", "flashvid", *args], capture_output=True, text=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        best = min(best, time.perf_counter() - start)
        cpu_best = min(cpu_best, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        if proc.returncode != status:
            sys.exit(f"time_help: `{name}` exited {proc.returncode}, expected {status}:\n{proc.stderr}")
    print(f"{best:6.2f} s wall ({cpu_best:.2f} s CPU)  {name}")
PY
