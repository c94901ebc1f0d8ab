"""Clocks shared by the subcommands: per training step (with the data wait), a loader's production rate, and a
GPU-synchronised repeat timer."""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable, Iterable

import torch
from lightning.pytorch.callbacks import Callback


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def reset_peak_memory(device: torch.device) -> None:
    """Start a peak-memory measurement on ``device`` (nothing on the CPU)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_gib(device: torch.device) -> float | None:
    """``device``'s peak allocated memory since :func:`reset_peak_memory`, GiB (None on the CPU)."""
    if device.type != "cuda":
        return None
    return round(torch.cuda.max_memory_allocated(device) / 2**30, 2)


class StepClock(Callback):
    """Per-step wall time and data-wait time (a step's start minus the previous step's end: the loader, the copy to
    the device, the GPU augmentation), the GPU synchronised at each step end. With ``max_timed_s`` it ends the run
    once the timed part (after ``warmup`` steps, at least ``min_timed`` of them) has lasted that long, so a slow
    configuration costs a bounded time. The CUDA pinned-memory pool's growth inside the timed part is reported: a
    block made new costs ~28 ms of page-locking (see :func:`pinned_pool`)."""

    def __init__(self, warmup: int = 0, min_timed: int = 1, max_timed_s: float | None = None,
                 pool: Callable[[], dict[str, Any] | None] | None = None):
        self.warmup, self.min_timed, self.max_timed_s = warmup, min_timed, max_timed_s
        self.pool = pool or pinned_pool  # the pool's counters (a test passes its own)
        self.starts: list[float] = []
        self.ends: list[float] = []
        self.pinned_at_warmup: dict[str, Any] | None = None
        self.pinned_last: dict[str, Any] | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.starts.append(time.perf_counter())

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        sync()
        self.ends.append(time.perf_counter())
        self.pinned_last = self.pool()
        timed = len(self.ends) - 1 - self.warmup
        if timed == 0:
            self.pinned_at_warmup = self.pinned_last
        if (self.max_timed_s is not None and timed >= self.min_timed
                and self.ends[-1] - self.ends[self.warmup] > self.max_timed_s):
            trainer.should_stop = True

    def summary(self, clips_per_step: int) -> dict[str, Any]:
        """Clips/s over the steps after the warm-up (epoch boundaries inside them count: they are part of training)."""
        ends, starts = self.ends[self.warmup:], self.starts[self.warmup:]
        n = len(ends) - 1
        if n < 1:
            return {"steps_timed": 0, "clips_per_s": None}
        total = ends[-1] - ends[0]
        waits = [starts[i + 1] - ends[i] for i in range(n)]
        steps = [b - a for a, b in zip(ends[:-1], ends[1:])]
        return {"steps_timed": n, "clips_per_s": round(clips_per_step * n / total, 2),
                "step_s_median": round(statistics.median(steps), 4), "step_s_max": round(max(steps), 4),
                "data_wait_fraction": round(sum(waits) / total, 4),
                "data_wait_s_median": round(statistics.median(waits), 4),
                "warmup_s": round(self.ends[self.warmup] - self.starts[0], 1),
                # where the waiting was: [step (from 0, warm-up included), seconds] of each wait over 20 ms, so a
                # few long stalls (an epoch end, a worker's first batch) read apart from a loader short everywhere
                "long_waits": [[self.warmup + i + 1, round(w, 3)] for i, w in enumerate(waits) if w > 0.02],
                **pinned_growth(self.pinned_at_warmup, self.pinned_last)}


def pinned_pool() -> dict[str, Any] | None:
    """The CUDA pinned-memory pool's counters (None without a GPU). The loader's pin thread takes blocks for each
    batch, and the pool grows until it holds every batch in flight, which it reaches only once the loader runs
    ahead of the GPU: with 8-10 workers, blocks were still made up to step ~33 of a process's first row (51 blocks,
    1.2-1.4 s of ``cudaHostAlloc``), none in later rows. A one-time cost per process, as compilation is."""
    if not torch.cuda.is_available() or not hasattr(torch.cuda, "host_memory_stats"):
        return None
    return dict(torch.cuda.host_memory_stats())


def pinned_growth(before: dict[str, Any] | None, after: dict[str, Any] | None) -> dict[str, Any]:
    """Pinned blocks made during the timed steps and the seconds spent making them."""
    if before is None or after is None:
        return {}
    made = after.get("num_host_alloc", 0) - before.get("num_host_alloc", 0)
    us = after.get("host_alloc_time.total", 0) - before.get("host_alloc_time.total", 0)
    return {"pinned_blocks_made_timed": made, "pinned_alloc_s_timed": round(us / 1e6, 3),
            "pinned_blocks": after.get("allocations.current"), "pinned_gb": round(
                after.get("allocated_bytes.current", 0) / 1e9, 2)}


def production_rate(batches: Iterable[Any], warmup: int, count: int, size: Callable[[Any], int],
                    max_s: float | None = None, min_count: int = 1) -> dict[str, Any]:
    """Items/s of an iterable consumed as fast as it produces (a loader with nothing else running): ``warmup``
    batches skipped (worker start, first opens), then up to ``count`` timed, fewer once ``max_s`` has passed."""
    it = iter(batches)
    for _ in range(warmup):
        next(it)
    t, got, n = time.perf_counter(), 0, 0
    for n in range(1, count + 1):
        got += size(next(it))
        if max_s is not None and n >= min_count and time.perf_counter() - t > max_s:
            break
    dt = time.perf_counter() - t
    del it
    return {"per_s": round(got / dt, 2), "batches": n, "items": got, "s": round(dt, 2)}


def repeat_time(fn: Callable[[], Any], repeats: int, warmup: int = 3) -> float:
    """Seconds per call of ``fn``, GPU-synchronised, after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    sync()
    t = time.perf_counter()
    for _ in range(repeats):
        fn()
    sync()
    return (time.perf_counter() - t) / repeats
