"""Val top-1 of the plain defaults vs experiment=small_data from scratch, one view vs 5x3 (baseline: plain, one view).

Accuracy of the plain defaults vs ``experiment=small_data`` from scratch on real footage, one view vs multi-view
(was ``scripts/measure_recipes.py``).

Trains X3D-XS from scratch (no weights can be downloaded) with ``flashvid train`` as a user would, per config and
seed, all runs at once as parallel processes on one GPU with the CPU cores split between them, then scores each
run's ``best.ckpt`` on the val folder (never seen in training: checkpoints are chosen on a split held out of
train, as both recipes do by default). Every val video is decoded once as 5 clips x 3 crops; from the views'
logits come the one-view score (the middle clip's middle crop *is* the single centred view: same start, same crop,
tests/test_multiview.py) and the 5x3 scores averaged as probabilities and as logits (``data.view_average``).
Result: val top-1 mean +- std over seeds per config and view setting (``val_top1`` in OUT/recipes.json); the
baseline is the first config's one-view mean (plain), every other config and view setting a ratio to it.

Data: ``../shared/flash_kinetics`` (5 classes, 49 train / 44 val Kinetics clips, short side 256; its README).
Use it in place, never copy it into the repository (no redistribution licence); on the GPU machine carry a copy
under the ignored ``runs/`` folder.

Budget (the lead's ~10 min of one H200, 16 cores; the whole call must end within 9 min = 540 s):
  ~20 s to install the carried wheels; then the 6 runs (2 configs x 3 seeds) start together, ~20 s each of
  imports, CUDA start and model build. X3D-XS on 4x160x160 clips is nothing to an H200: decoding sets the pace.
  Per epoch a run decodes its ~44 (plain) or ~39 (small_data) training videos, each one clip span (1.6 s) plus the
  lead-in from the keyframe before it, ~150 frames of 256p H.264: ~0.1 s of one core (the device README measured
  0.59 s for 16 frames of 720p, 7x the pixels), so ~4.4 s of decoding on 2 loader workers per run (16 cores / 6
  runs, one left to each main process) is ~2.2 s, plus 5-10 held-out videos and a checkpoint write: ~4 s an
  epoch, all 6 runs in parallel. 80 epochs ~ 320 s. Scoring: 44 val videos x 6 checkpoints, each file read once
  for its 15 views on 14 workers, ~30 s with the imports. Total ~ 20 + 20 + 320 + 30 = 390 s, 150 s to spare.
  ``trainer.max_time`` stops every run at ``--max-train-s`` (400 s) so the call ends by ~480 s even if an epoch
  takes 5 s or more; such a run is marked ``capped`` in the JSON (its cosine schedule did not finish: compare only
  uncapped runs, or lower ``--epochs``). ``--calibrate`` runs 3 epochs of the 6 runs and reports the seconds per
  epoch to size ``--epochs`` from, when device time allows.

    python scripts/bench.py recipes --smoke --out /tmp/smoke      # here, CPU, tiny encoded fixture

On the GPU machine (../shared/device/README.md). What travels must stay under 64 MiB: the wheels are 46 MB and
train/ + val/ 23 MB, so leave out torchcodec (PyAV decodes the .mp4 files) and kornia_rs (5.3 MB; Kornia imports
it only for ``kornia.io``, image files, which flashvid never uses: a one-line stand-in takes its place):
  here, once:  bash ../shared/device/fetch_wheels.sh && rm .whl/torchcodec-*.whl .whl/kornia_rs-*.whl
               mkdir -p runs/flash_kinetics && cp -r ../shared/flash_kinetics/train ../shared/flash_kinetics/val \\
                   runs/flash_kinetics/                                   # runs/ is ignored: never committed
  run, carry [".whl", "runs/flash_kinetics"], timeout_s 600:
    rm -rf /tmp/site; python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site
    .whl/*.whl >/dev/null && mkdir -p /tmp/site/kornia_rs && echo 'io = None' > /tmp/site/kornia_rs/__init__.py
    && export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 || exit;
    python3 scripts/bench.py recipes --data runs/flash_kinetics --work-dir /tmp/mr --out $OUT
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ..footage import REPO, SHARED
from ..record import BenchError, Record

# what each config adds to the shared overrides; both train X3D-XS from scratch for the same number of epochs
CONFIGS: dict[str, list[str]] = {
    "plain": ["model=x3d_xs", "model.pretrained=false"],
    "small_data": ["experiment=small_data"],
    # not run by default: small_data on every training video (no held-out fifth), its last EMA weights scored
    "small_data_all": ["experiment=small_data", "data.val_split=0"],
}
NUM_CLIPS, NUM_CROPS = 5, 3
ONE_VIEW = (NUM_CLIPS // 2) * NUM_CROPS + NUM_CROPS // 2  # the middle clip's middle crop (clip-major views)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", type=Path, default=SHARED / "flash_kinetics",
                   help="folder with train/ and val/ class folders (default %(default)s)")
    p.add_argument("--epochs", type=int, default=80, help="epochs of every run (both configs the same)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--configs", nargs="+", default=["plain", "small_data"], choices=list(CONFIGS),
                   help="the first one's one-view score is the baseline (default %(default)s)")
    p.add_argument("--cores", type=int, default=None, help="CPU cores to split between the runs (default: all)")
    p.add_argument("--workers", type=int, default=None, help="loader workers per run (default: cores / runs - 1)")
    p.add_argument("--max-train-s", type=int, default=400, help="trainer.max_time of each run (a safety net)")
    p.add_argument("--work-dir", type=Path, default=None, help="run directories (default: a temporary folder)")
    p.add_argument("--calibrate", action="store_true", help="3 epochs, report seconds per epoch, no scoring")
    p.add_argument("--smoke", action="store_true", help="CPU, a tiny encoded fixture, 1 epoch, 2 seeds")


def run(args: argparse.Namespace, record: Record) -> None:
    start = time.perf_counter()
    if not args.smoke:
        check_data(args.data)
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="bench_recipes_"))
    work.mkdir(parents=True, exist_ok=True)
    extra: list[str] = []
    data = args.data
    if args.smoke:  # what must shrink for 7 training videos on a shared 2-core CPU
        data = smoke_data(work / "data")
        args.epochs, args.seeds = 1, args.seeds[:2]
        extra = ["trainer.accelerator=cpu", "data.batch_size=2", "data.crop_size=64",
                 "trainer.num_sanity_val_steps=0"]
        args.workers = 0 if args.workers is None else args.workers
    if args.calibrate:
        args.epochs = 3
    record.put(data=str(data), epochs=args.epochs, seeds=args.seeds,
               configs={c: CONFIGS[c] for c in args.configs}, extra_overrides=extra)
    runs = train_all(args, data, work, extra, record)
    if args.calibrate:
        # an upper bound: train_s includes each process's start (imports, CUDA, model build)
        per_epoch = {f"{r['config']}_seed{r['seed']}": round(r["train_s"] / args.epochs, 1) for r in runs}
        record.put(train_s={f"{r['config']}_seed{r['seed']}": r["train_s"] for r in runs},
                   seconds_per_epoch_at_most=max(per_epoch.values()))
        first, *rest = per_epoch.items()
        record.baseline(first[0], first[1], "s/epoch at most", group="calibrate")
        for name, value in rest:
            record.row(name, value, "s/epoch at most", group="calibrate")
    else:
        workers = 0 if args.smoke else max(1, (args.cores or os.cpu_count() or 1) - 2)
        for r in runs:
            r["val_top1"] = record.step(f"score {r['config']} seed {r['seed']}", score, r["ckpt"], data / "val",
                                        workers, args.smoke, cost_s=10)
        scored = [r for r in runs if r["val_top1"]]
        table = summarise(scored)
        record.put(val_top1=table)
        rows = [(config, view, v["mean"], v["std"]) for config, views in table.items() for view, v in views.items()]
        for config, view, mean, std in sorted(rows, key=lambda x: (x[:2] != (args.configs[0], "one_view"))):
            if (config, view) == (args.configs[0], "one_view"):
                record.baseline(f"{config} {view}", mean, "val top-1", group="recipes", std=std)
            else:
                record.row(f"{config} {view}", mean, "val top-1", group="recipes", std=std)
    record.put(runs=runs, wall_s=round(time.perf_counter() - start, 1))


def check_data(data: Path) -> None:
    if not (data / "train").is_dir() or not (data / "val").is_dir():
        raise BenchError(f"--data {data}: needs train/ and val/ class folders")


def train_command(config: str, seed: int, data: Path, run_dir: Path, epochs: int, workers: int,
                  max_train_s: int, extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "flashvid", "train", *CONFIGS[config],
            f"data.train_folder={data / 'train'}", f"seed={seed}", f"trainer.max_epochs={epochs}",
            f"data.num_workers={workers}", f"hydra.run.dir={run_dir}", "test_after_training=false",
            "callbacks.rich_progress_bar=null", "logger=csv",
            f"trainer.max_time={{seconds:{max_train_s}}}", *extra]


def train_all(args: argparse.Namespace, data: Path, out_dir: Path, extra: list[str],
              record: Record) -> list[dict[str, Any]]:
    """Every (config, seed) run as its own ``flashvid train`` process, all at once."""
    runs = [(c, s) for c in args.configs for s in args.seeds]
    cores = args.cores or os.cpu_count() or 1
    workers = args.workers if args.workers is not None else max(1, round(cores / len(runs)) - 1)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
               OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")  # the cores belong to the loader workers
    procs = []
    for config, seed in runs:
        run_dir = out_dir / f"{config}_seed{seed}"
        cmd = train_command(config, seed, data, run_dir, args.epochs, workers, args.max_train_s, extra)
        log = open(out_dir / f"{config}_seed{seed}.log", "w")
        procs.append((config, seed, run_dir, log, time.perf_counter(), subprocess.Popen(
            cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)))
    record.log(f"recipes: {len(procs)} runs x {args.epochs} epochs, {workers} loader workers each")
    results = []
    for config, seed, run_dir, log, started, proc in procs:
        rc = proc.wait()
        log.close()
        seconds = time.perf_counter() - started
        if rc != 0:
            log_path = out_dir / f"{config}_seed{seed}.log"
            print("\n".join(log_path.read_text().splitlines()[-15:]), file=sys.stderr)
            raise BenchError(f"{config} seed {seed}: flashvid train failed (exit {rc}), its log: {log_path}")
        metrics = json.loads((run_dir / "metrics.json").read_text())
        epochs_done = int(metrics["epochs"])
        results.append({"config": config, "seed": seed, "run_dir": str(run_dir), "train_s": round(seconds, 1),
                        "epochs_done": epochs_done, "capped": epochs_done < args.epochs,
                        "best_by": metrics.get("best_by"),
                        "best_score": metrics.get("best_score"), "ckpt": str(best_checkpoint(run_dir))})
        record.log(f"recipes: {config} seed {seed}: {seconds:.0f} s, {epochs_done} epochs")
    return results


def best_checkpoint(run_dir: Path) -> Path:
    for name in ("best.ckpt", "last.ckpt"):
        if (run_dir / "checkpoints" / name).is_file():
            return run_dir / "checkpoints" / name
    raise BenchError(f"no checkpoint in {run_dir / 'checkpoints'}")


def score(ckpt: str, val_folder: Path, workers: int, check_one_view: bool) -> dict[str, float]:
    """Val top-1 of one checkpoint: one view, 5x3 views (probabilities / logits averaged), 5x1 and 1x3."""
    import torch
    from torch.utils.data import DataLoader

    from flashvid.data import VideoClipDataset, collate_clips
    from flashvid.data.sources import scan_class_folders
    from flashvid.data.view_averaging import average_views
    from flashvid.loading import load_classifier

    model = load_classifier(ckpt)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.eval().to(device)
    samples, labels = scan_class_folders(val_folder, model.labels, what="val folder")
    cfg = model.data_config
    dataset = VideoClipDataset(samples, cfg.sampling, cfg.eval_transform(NUM_CROPS), "uniform", num_clips=NUM_CLIPS)
    loader = DataLoader(dataset, batch_size=4, num_workers=workers, collate_fn=collate_clips)
    views, truth = [], []
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
        for batch in loader:
            if batch["failed"]:
                raise BenchError(f"unreadable val files: {batch['failed']}")
            video = batch["video"].to(device)
            b, v = video.shape[:2]
            views.append(model(video.flatten(0, 1)).float().view(b, v, -1).cpu())  # each view's own logits
            truth.append(batch["label"])
    logits, y = torch.cat(views), torch.cat(truth)
    grid = logits.view(len(y), NUM_CLIPS, NUM_CROPS, -1)

    def top1(log_probs: torch.Tensor) -> float:
        return float((log_probs.argmax(-1) == y).float().mean())

    out = {"one_view": top1(logits[:, ONE_VIEW]),
           "views_5x3_prob": top1(average_views(logits, "prob")),
           "views_5x3_logit": top1(average_views(logits, "logit")),
           "clips_5x1_prob": top1(average_views(grid[:, :, NUM_CROPS // 2], "prob")),
           "crops_1x3_prob": top1(average_views(grid[:, NUM_CLIPS // 2], "prob"))}
    if check_one_view:  # the view picked above is what a one-view evaluation decodes and scores
        from flashvid.inference import PredictOptions, Predictor

        results = Predictor(model, PredictOptions(device=device)).predict([s.path for s in samples])
        picked = [model.labels[i] for i in logits[:, ONE_VIEW].argmax(-1).tolist()]
        if picked != [r["label"] for r in results]:
            raise RuntimeError("the middle view differs from the one-view prediction")
    return out


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for config in dict.fromkeys(r["config"] for r in runs):
        mine = [r for r in runs if r["config"] == config]
        table[config] = {}
        for key in mine[0]["val_top1"]:
            values = [r["val_top1"][key] for r in mine]
            table[config][key] = {"mean": round(statistics.mean(values), 4),
                                  "std": round(statistics.stdev(values), 4) if len(values) > 1 else 0.0,
                                  "per_seed": values}
    return table


def smoke_data(root: Path) -> Path:
    """A tiny encoded two-class set in the flash_kinetics layout (train/ and val/ class folders)."""
    from flashvid.data import make_demo_dataset

    return make_demo_dataset(root, motions=("bounce", "clockwise"), videos_per_class={"train": 8, "val": 2},
                             num_frames=24, height=48, width=64)
