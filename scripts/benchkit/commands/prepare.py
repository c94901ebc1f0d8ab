"""``flashvid prepare`` files/s on all cores, against decoding every frame of the same files (baseline).

Per footage set: the set's files listed ``--repeat`` times (hard links under ``--data``), so the pool's start-up
and its last, partly filled round weigh what they weigh on a dataset of that many files. The baseline decodes every
frame of every file once, in a process pool as large as prepare's and one decode thread per process as its workers
have: no conversion can be faster than reading its source, so the ratio says how much of the ceiling prepare
reaches. Then ``flashvid prepare`` (sized for ``--backbone``) writes each ``--formats`` from scratch
(``--every-frame``: also without the cap's skip of the B-frames it drops). Besides the
wall-clock rate, ``steady files/s`` is workers / mean seconds per file (what a long dataset converges to).

    python scripts/bench.py prepare --sets synth:720p --synth-per-class 8 --repeat 6      # 192 files of 10 s 720p
    python scripts/bench.py prepare --sets flash_kinetics,real --formats video,frames
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

from .. import footage
from ..record import BenchError, Record


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sets", default="synth:720p", help="footage sets as for train (default %(default)s)")
    p.add_argument("--repeat", type=int, default=1, help="list each file this many times (default %(default)s)")
    p.add_argument("--formats", default="video,frames", help="prepare.format values, comma list")
    p.add_argument("--workers", type=int, default=None, help="pool size (default: prepare's, one per core)")
    p.add_argument("--backbone", default="videomae_base", help="prepare sized for it (default %(default)s)")
    p.add_argument("--every-frame", action="store_true", help="also each format with every source frame decoded "
                   "(skip_nonref=False: the same copies without the cap's skip of dropped B-frames)")
    footage.add_arguments(p, classes=4, per_class=8)


def run(args: argparse.Namespace, record: Record) -> None:
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    if args.repeat < 1:
        raise BenchError(f"--repeat {args.repeat}: must be >= 1")
    for name in footage.resolve(args.sets, Path(args.shared)):
        fset = footage.get(name, args)
        record.step(f"prepare {name}", measure_set, args, record, fset, formats)


def measure_set(args: argparse.Namespace, record: Record, fset: footage.FootageSet, formats: list[str]) -> None:
    from flashvid.data.prepare import prepare, settings_for, start_pool_server
    from flashvid.data.sources import list_videos

    record.info(f"footage/{fset.name}", footage.describe(fset.train))
    listed = _listed(fset, args.repeat, Path(args.data) / "prepare_rate")
    files = list_videos(listed)
    workers = min(args.workers or os.cpu_count() or 1, len(files))
    # spawned (the parent holds torch) and started before the clock: the ceiling leaves start-up out
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        list(pool.map(_started, range(workers)))
        t = time.perf_counter()
        frames = list(pool.map(_decode_all, files, chunksize=1))
        seconds = time.perf_counter() - t
    record.baseline("decode every frame", round(len(files) / seconds, 2), "files/s", group=fset.name,
                    files=len(files), workers=workers, frames_per_s=round(sum(frames) / seconds))
    start_pool_server()  # once per process, reused by every prepare below: the first run would pay it alone
    runs = [(fmt, True) for fmt in formats] + [(fmt, False) for fmt in formats if args.every_frame]
    for fmt, skip in runs:
        out = Path(args.data) / "prepare_rate" / f"out_{fmt}"
        shutil.rmtree(out, ignore_errors=True)
        settings = settings_for({}, args.backbone, format=fmt)
        report = prepare(out, train_folder=listed, settings=settings, workers=workers, progress=False,
                         skip_nonref=skip)
        done = [f for f in report.files if f.get("seconds") is not None and f.get("action") != "failed"]
        per_file = [float(f["seconds"]) for f in done]
        steady = workers / statistics.mean(per_file) if per_file else 0.0
        encodes = [int((f.get("out") or {}).get("encodes", 1)) for f in done if f.get("action") == "converted"]
        decoded = sum(int((f.get("out") or {}).get("source_frames_decoded", 0)) for f in done)
        name = f"prepare format={fmt}" + ("" if skip else ", every source frame decoded")
        record.row(name, round(report.files_per_s, 2), "files/s", group=fset.name,
                   steady_files_per_s=round(steady, 2), seconds=report.seconds, converted=report.converted,
                   kept=report.kept, failed=len(report.failed), mb_in=round(report.bytes_in / 1e6, 1),
                   mb_out=round(report.bytes_out / 1e6, 1), files_encoded_again=sum(e > 1 for e in encodes),
                   source_frames_decoded=decoded, source_frames=sum(frames),
                   seconds_per_file_median=round(statistics.median(per_file), 3) if per_file else None)
        shutil.rmtree(out, ignore_errors=True)


def _listed(fset: footage.FootageSet, repeat: int, root: Path) -> Path:
    """The set's class folders with each file listed ``repeat`` times (hard links; copies across file systems)."""
    from flashvid.data.sources import list_videos

    dst = root / f"{fset.name.replace(':', '_').replace('/', '_')}_x{repeat}"
    shutil.rmtree(dst, ignore_errors=True)
    for src in map(Path, list_videos(fset.train)):
        folder = dst / src.parent.name
        folder.mkdir(parents=True, exist_ok=True)
        for r in range(repeat):
            link = folder / f"{src.stem}_r{r}{src.suffix}"
            try:
                os.link(src, link)
            except OSError:
                shutil.copyfile(src, link)
    return dst


def _started(_: int) -> None:
    import flashvid.data.decoding  # noqa: F401  (imported before the clock starts)


def _decode_all(path: str) -> int:
    """Frames decoded, every one, on one thread (a prepare worker's share of the cores)."""
    from flashvid.data.decoding import open_container

    n = 0
    with open_container(path) as container:
        stream = container.streams.video[0]
        stream.thread_type, stream.thread_count = "AUTO", 1
        for _ in container.decode(stream):
            n += 1
    return n

