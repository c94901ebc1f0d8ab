"""How many pytest-xdist workers the suite gets: one per core this process may use (the cores it is pinned to,
capped by a cgroup CPU quota: a container limited to 2 cores of a 64-core host sees 64, and ``-n auto`` would start
workers that fight over 2 cores), at most 8. ``scripts/test.sh`` and ``scripts/machine/check_latest.sh`` use it."""

import math
import os


def worker_count(most: int = 8) -> int:
    n = len(os.sched_getaffinity(0))
    try:
        with open("/sys/fs/cgroup/cpu.max") as f:
            quota, period = f.read().split()
        if quota != "max":
            n = min(n, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return min(n, most)


if __name__ == "__main__":
    print(worker_count())
