"""Pretrain then fine-tune, against fine-tuning from scratch in the same GPU time (baseline), as a curve.

Does flashvid pretrain pay? VideoMAE pretrained with flashvid's own module (flashvid.pretraining, what `flashvid
pretrain` runs), then fine-tuned, against the same fine-tuning from random init given the same total GPU time (the
baseline); several seeds, mean and spread.

Per seed: (1) one self-supervised VideoMAE pretraining run of --pretrain-epochs (P), its encoder saved after each
--curve fraction of P (default P/4, P/2, P: checkpoints of one cosine schedule, so the early ones are not annealed);
for each checkpoint, longest first, (2) fine-tuning from its encoder for --finetune-epochs and (3) the same
fine-tuning from random init for as many more epochs as fit in the pretraining time up to that checkpoint (measured
fit times, at (2)'s steady seconds per epoch; the cosine schedule then spans the longer run); (4) once, a control:
random init fine-tuned for only --finetune-epochs (does the short fine-tuning learn at all without the encoder?).
Both arms use identical settings otherwise and are tested on the test folder with their final weights, one centre
clip per video.

Data, two modes:
  synthetic (default): the make_synth_ucf.py set in --data (pretraining on its train/, labels ignored), where MAE
      has nothing to learn (docs/benchmarks.md);
  real: --train DIR --test DIR (class folders: fine-tune on train, score on test) and --unlabelled DIR (repeatable,
      any layout, searched recursively, labels ignored). The pretraining set is train + the unlabelled folders
      without any file of the test folder (one found there is dropped and counted) unless --pretrain-on-test
      (transductive: the test videos, never their labels); the JSON's pretraining_set says which.

Seeds run one after the other, or --parallel N at a time in N processes sharing the one GPU (small models leave
it idle between steps); each process then gets cores/N - 1 decode workers, and fit seconds are wall-clock seconds
under the same sharing for both arms. --budget-s (default 500): seeds, and steps of a seed, that would not finish
in time are skipped and listed in the JSON; --cap-s caps any single fit. Encoders go to a temporary folder, deleted
after their seed.

    python scripts/bench.py pretrain --out OUT [--data /tmp/ucf] [--synth-script ../shared/bench/make_synth_ucf.py]
    python scripts/bench.py pretrain --out OUT --train K/train --test K/val --unlabelled K/predict \\
        --unlabelled realclips --frames 8 --sampling-rate 8 --batch 16 --parallel 3   # docs/benchmarks.md
    python scripts/bench.py pretrain --out OUT --tiny     # CPU toy scale on flashvid's demo videos (minutes)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..footage import REPO
from ..record import BenchError, Record

if TYPE_CHECKING:
    import lightning as L

    from flashvid import Trainer
TINY_ARCH = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, patch_size=8,
                 tubelet_size=2, decoder_hidden_size=32, decoder_num_hidden_layers=1, decoder_num_attention_heads=2,
                 decoder_intermediate_size=64)
ENCODER_KEYS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "patch_size",
                "tubelet_size")


@dataclass
class Sets:
    """What one run trains and scores on: fine-tuning class folders, and the pretraining set's files."""

    mode: str  # "real" or "synthetic"
    train: str
    test: str
    pretrain_videos: list[str]
    pretraining_set: dict[str, Any] = field(default_factory=dict)


def find_synth_script(given: str | None) -> Path:
    candidates = [given] if given else [REPO / ".bench" / "make_synth_ucf.py", REPO.parent / "shared" / "bench" /
                                        "make_synth_ucf.py", Path("/work/shared/bench/make_synth_ucf.py")]
    for c in candidates:
        if c and Path(c).is_file():
            return Path(c)
    raise BenchError(f"make_synth_ucf.py not found (tried {', '.join(map(str, candidates))}): "
                     "pass --synth-script PATH or --data DIR of an existing set")


def pretraining_videos(train: str | Path, unlabelled: list[str | Path], test: str | Path,
                       include_test: bool) -> tuple[list[str], dict[str, Any]]:
    """The pretraining set: every video under train and the unlabelled folders (recursively, each file once), the
    test folder's files dropped unless ``include_test`` (then the test folder is added too); and a report of it."""
    from flashvid.data.sources import collect_paths

    test_files = {os.path.realpath(s.path) for s in collect_paths(test)}
    folders = [train, *unlabelled, *([test] if include_test else [])]
    seen: set[str] = set()
    paths: list[str] = []
    dropped = duplicates = 0
    for folder in folders:
        for sample in collect_paths(folder):
            real = os.path.realpath(sample.path)
            if real in seen:
                duplicates += 1
            elif real in test_files and not include_test:
                dropped += 1
            else:
                seen.add(real)
                paths.append(sample.path)
    return paths, {"folders": [str(f) for f in folders], "test_folder": str(test),
                   "test_videos_included": include_test, "videos": len(paths),
                   "videos_from_test_folder": len(seen & test_files), "test_files_dropped": dropped,
                   "duplicates_dropped": duplicates}


def prepare_data(args: argparse.Namespace, out: Path) -> Sets:
    import flashvid

    if args.train or args.test:
        for option, folder in (("--train", args.train), ("--test", args.test), *(("--unlabelled", u)
                                                                                  for u in args.unlabelled)):
            if not folder or not Path(folder).is_dir():
                raise BenchError(f"{option} {folder}: not a folder (real mode needs --train and --test class "
                                 "folders; --unlabelled folders of videos)")
        try:
            videos, report = pretraining_videos(args.train, args.unlabelled, args.test, args.pretrain_on_test)
        except ValueError as e:  # a folder without videos
            raise BenchError(str(e)) from None
        return Sets("real", str(args.train), str(args.test), videos, report)
    if args.unlabelled or args.pretrain_on_test:
        raise BenchError("--unlabelled and --pretrain-on-test are for real mode: give --train and --test too")
    if args.tiny:  # flashvid's own generator: no OpenCV needed on a CPU box
        root = out / "demo_data"
        flashvid.make_demo_dataset(root, videos_per_class={"train": 6, "test": 3}, num_frames=16, height=48,
                                   width=64)
    else:
        root = Path(args.data)
        if not (root / "train").is_dir():
            script = find_synth_script(args.synth_script)
            print(f"bench pretrain: writing the synthetic UCF-shaped set into {root} with {script}", flush=True)
            subprocess.run([sys.executable, str(script), str(root)], check=True, stdout=subprocess.DEVNULL)
    train = str(root / "train")
    videos = flashvid.data.list_videos(train)
    return Sets("synthetic", train, str(root / "test"), videos,
                {"folders": [train], "test_folder": str(root / "test"), "test_videos_included": False,
                 "videos": len(videos), "videos_from_test_folder": 0, "test_files_dropped": 0,
                 "duplicates_dropped": 0})


def trainer(args: argparse.Namespace, epochs: int, cap_s: float | None = None,
            callbacks: list["L.Callback"] | None = None) -> "Trainer":
    from flashvid import Trainer
    from flashvid.commands.config import default_precision

    accelerator = "cpu" if args.tiny else "auto"
    return Trainer(accelerator=accelerator, devices=1, precision=default_precision(accelerator), max_epochs=epochs,
                   max_time={"seconds": max(1.0, cap_s if cap_s is not None else args.cap_s)}, logger=False,
                   enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                   num_sanity_val_steps=0, deterministic=False, log_every_n_steps=5, callbacks=callbacks)


def synchronize() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed_fit(t: "Trainer", model: Any, dm: Any) -> float:
    synchronize()
    start = time.perf_counter()
    t.fit(model, datamodule=dm)
    synchronize()
    return time.perf_counter() - start


def release(t: "Trainer") -> None:
    """Stop the run's persistent decode workers now rather than when the garbage collector finds them."""
    import gc

    import torch

    t.fit_loop._combined_loader = None
    t.test_loop._combined_loader = None
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def clip_settings(args: argparse.Namespace) -> dict[str, Any]:
    extra = {} if args.sampling_rate is None else {"sampling_rate": args.sampling_rate}
    return {"num_frames": args.frames, "crop_size": args.size, **extra}


def encoder_checkpoints(directory: Path, epochs: list[int]) -> "L.Callback":
    """A callback that saves the encoder after each of ``epochs`` with ``save_encoder`` (what ``flashvid pretrain``
    writes), noting the fit seconds so far (the saving itself not counted) and the loss."""
    import lightning as L

    class EncoderCheckpoints(L.Callback):
        def __init__(self) -> None:
            self.t0 = time.perf_counter()
            self.saving = 0.0
            self.points: dict[int, dict[str, Any]] = {}

        def on_train_epoch_end(self, t: "L.Trainer", module: Any) -> None:
            done = t.current_epoch + 1
            if done not in epochs:
                return
            synchronize()
            now = time.perf_counter()
            path = module.save_encoder(directory / f"epoch{done}", extra={"epochs": done})
            self.points[done] = {"epochs": done, "seconds": round(now - self.t0 - self.saving, 2), "steps":
                                 t.global_step, "loss": float(t.callback_metrics.get("train/loss", float("nan"))),
                                 "encoder": str(path)}
            self.saving += time.perf_counter() - now

    return EncoderCheckpoints()


def epoch_clock() -> "L.Callback":
    """A callback noting when each training epoch ends: the steady seconds per epoch, without the fit's start-up."""
    import lightning as L

    class EpochClock(L.Callback):
        def __init__(self) -> None:
            self.ends: list[float] = []

        def on_train_epoch_end(self, t: "L.Trainer", module: Any) -> None:
            synchronize()
            self.ends.append(time.perf_counter())

    return EpochClock()


def pretrain(args: argparse.Namespace, sets: Sets, seed: int, directory: Path, epochs: list[int],
             cap_s: float) -> dict[str, Any]:
    import lightning as L

    from flashvid.pretraining import VideoMAEPretrainer, unlabelled_data

    L.seed_everything(seed, workers=True)
    arch = TINY_ARCH if args.tiny else {}
    dm = unlabelled_data(sets.pretrain_videos, batch_size=args.pretrain_batch, seed=seed,
                         num_workers=args.workers, **clip_settings(args),
                         augmentation={"scale": (0.44, 1.0), "ratio": (0.857, 1.167), "hflip": 0.5})
    model = VideoMAEPretrainer("videomae_small", config=arch, data=clip_settings(args),
                               repeated_sampling=args.repeats, learning_rate=args.pretrain_lr, compile=False)
    saver = encoder_checkpoints(directory, epochs)
    t = trainer(args, max(epochs), cap_s, callbacks=[saver])
    saver.t0 = time.perf_counter()
    seconds = timed_fit(t, model, dm) - saver.saving
    release(t)
    return {"seconds": round(seconds, 2), "epochs": t.current_epoch, "steps": t.global_step, "videos":
            len(sets.pretrain_videos), "final_loss": float(t.callback_metrics.get("train/loss", float("nan"))),
            "effective_batch": model.effective_batch_size(), "learning_rate": args.pretrain_lr,
            "checkpoints": saver.points}


def finetune(args: argparse.Namespace, sets: Sets, seed: int, epochs: int, encoder: str | None,
             cap_s: float | None = None) -> dict[str, Any]:
    import lightning as L

    from flashvid import VideoClassificationData, VideoClassifier

    L.seed_everything(seed, workers=True)
    hflip = args.hflip if args.hflip is not None else (0.5 if sets.mode == "real" else 0.0)
    # synthetic: no flips, its classes include left vs right and clockwise vs counterclockwise motion
    dm = VideoClassificationData.from_folders(train_folder=sets.train, test_folder=sets.test, batch_size=args.batch,
                                              seed=seed, num_workers=args.workers, **clip_settings(args),
                                              augmentation={"scale": (0.5, 1.0), "hflip": hflip})
    arch = {k: v for k, v in (TINY_ARCH if args.tiny else {}).items() if k in ENCODER_KEYS}
    common = dict(labels=dm.labels, learning_rate=args.lr, weight_decay=0.05, warmup_ratio=0.1, compile=False)
    if encoder is not None:
        clf = VideoClassifier("videomae_small", pretrained=encoder, **common)
    else:  # the pretrained encoder's architecture, at random init
        clf = VideoClassifier("videomae_small", pretrained=False,
                              backbone_kwargs={"num_frames": args.frames, "image_size": args.size, **arch}, **common)
    clock = epoch_clock()
    t = trainer(args, epochs, cap_s, callbacks=[clock])
    seconds = timed_fit(t, clf, dm)
    ends = clock.ends  # type: ignore[attr-defined]
    steady = statistics.median(b - a for a, b in zip(ends, ends[1:])) if len(ends) > 1 else seconds / max(len(ends), 1)
    train_loss = float(t.callback_metrics.get("train/loss", float("nan")))
    tested = t.test(clf, datamodule=dm, verbose=False)[0]
    release(t)
    return {"seconds": round(seconds, 2), "epochs": t.current_epoch, "steps": t.global_step,
            "steady_epoch_seconds": round(steady, 4), "test_acc": float(tested["test/acc"]),
            "test_mean_class_acc": float(tested["test/mean_class_acc"]), "final_train_loss": train_loss}


def seed_run(args: argparse.Namespace, sets: Sets, seed: int, deadline: float) -> dict[str, Any]:
    """One seed's pretraining, then per checkpoint its fine-tuning and scratch at the same time, and the control;
    a step that would end after ``deadline`` (``time.time()``) is skipped and listed. Runs in a spawned process with
    ``--parallel``."""
    s0 = time.perf_counter()
    epochs = curve_epochs(args)
    run: dict[str, Any] = {"seed": seed, "points": [], "skipped": []}

    def fits(seconds: float) -> bool:
        return time.time() + seconds <= deadline

    def cap(seconds_left: float) -> float:
        return max(1.0, min(args.cap_s, seconds_left))

    with tempfile.TemporaryDirectory(prefix=f"bench_pretrain_seed{seed}_") as tmp:
        pre = pretrain(args, sets, seed, Path(tmp), epochs, cap(deadline - time.time()))
        run["pretrain"] = {k: v for k, v in pre.items() if k != "checkpoints"}
        finetune_s = 0.0  # the longest fine-tuning so far, with its test: what the next one is expected to cost
        for e in sorted(epochs, reverse=True):
            point = pre["checkpoints"].get(e)
            if point is None:
                run["skipped"].append(f"pretrain epoch {e}: pretraining stopped after {pre['epochs']} (--cap-s or "
                                      "the budget)")
                continue
            if not fits(finetune_s):
                run["skipped"].append(f"pretrain epoch {e}: fine-tuning would end after --budget-s")
                continue
            w = time.perf_counter()
            tuned = finetune(args, sets, seed, args.finetune_epochs, point["encoder"])
            finetune_s = max(finetune_s, time.perf_counter() - w)
            # scratch: the same fit plus as many epochs as the pretraining time holds at the steady epoch rate (the
            # start-up is paid once per fit, so dividing the whole time by the mean epoch would shortchange scratch)
            scratch_epochs = tuned["epochs"] + round(point["seconds"] / max(tuned["steady_epoch_seconds"], 1e-3))
            entry: dict[str, Any] = {"pretrain_epochs": e, "fraction": round(e / max(epochs), 4),
                                     "pretrain_seconds": point["seconds"], "pretrain_steps": point["steps"],
                                     "pretrain_loss": point["loss"], "pretrained_finetune": tuned, "scratch": None}
            need = (point["seconds"] + finetune_s) * 1.1
            if fits(need):
                scratch = finetune(args, sets, seed, scratch_epochs, None, cap(need))
                entry["scratch"] = scratch
                entry["gpu_seconds"] = {"pretrained_arm": round(point["seconds"] + tuned["seconds"], 2),
                                        "scratch_arm": scratch["seconds"]}
                print(f"seed {seed}, {e} pretraining epochs: pretrained {tuned['test_acc']:.3f} "
                      f"({point['seconds'] + tuned['seconds']:.0f} s, MAE loss {point['loss']:.3f})  scratch "
                      f"{scratch['test_acc']:.3f} ({scratch['seconds']:.0f} s, {scratch['epochs']} epochs)", flush=True)
            else:
                run["skipped"].append(f"pretrain epoch {e}: scratch at the same time ({need:.0f} s) would end "
                                      "after --budget-s")
            run["points"].append(entry)
            if "scratch_same_epochs" not in run:
                # control: random init with only the pretrained arm's fine-tuning epochs (is that schedule long
                # enough to learn at all? then a gap is the encoder's doing, not the short fine-tuning's)
                if fits(finetune_s):
                    run["scratch_same_epochs"] = finetune(args, sets, seed, args.finetune_epochs, None)
                else:
                    run["scratch_same_epochs"] = None
                    run["skipped"].append("control (scratch, fine-tuning epochs only) would end after --budget-s")
    full = next((p for p in run["points"] if p["pretrain_epochs"] == max(epochs)), None)
    if full is not None:  # the whole pretraining's point under the keys of the single-point benchmark
        run.update(pretrained_finetune=full["pretrained_finetune"], scratch=full["scratch"],
                   gpu_seconds=full.get("gpu_seconds"))
    run["wall_s"] = round(time.perf_counter() - s0, 1)
    return run


def curve_epochs(args: argparse.Namespace) -> list[int]:
    return sorted({max(1, round(f * args.pretrain_epochs)) for f in args.curve})


def spread(values: list[float]) -> dict[str, Any]:
    return {"mean": round(statistics.mean(values), 4) if values else None,
            "std": round(statistics.stdev(values), 4) if len(values) > 1 else None,
            "min": min(values, default=None), "max": max(values, default=None), "values": values}


def summarise(runs: list[dict[str, Any]], epochs: list[int]) -> dict[str, Any]:
    """Per pretraining length: both arms' test top-1 over the seeds, their paired difference, the MAE loss."""
    curve = []
    for e in epochs:
        pairs = [(p["pretrained_finetune"]["test_acc"], p["scratch"]["test_acc"], p) for r in runs
                 for p in r["points"] if p["pretrain_epochs"] == e and p["scratch"] is not None]
        curve.append({"pretrain_epochs": e, "seeds": len(pairs),
                      "pretrained_test_acc": spread([a for a, _, _ in pairs]),
                      "scratch_test_acc": spread([b for _, b, _ in pairs]),
                      "paired_difference": spread([round(a - b, 4) for a, b, _ in pairs]),
                      "pretrain_loss": spread([round(p["pretrain_loss"], 4) for _, _, p in pairs]),
                      "pretrained_arm_seconds": spread([p["gpu_seconds"]["pretrained_arm"] for _, _, p in pairs]),
                      "scratch_arm_seconds": spread([p["gpu_seconds"]["scratch_arm"] for _, _, p in pairs]),
                      "scratch_epochs": [p["scratch"]["epochs"] for _, _, p in pairs]})
    control = [r["scratch_same_epochs"]["test_acc"] for r in runs if r.get("scratch_same_epochs")]
    full = curve[-1] if curve else {}
    return {"curve": curve, "pretrained_test_acc": full.get("pretrained_test_acc"),
            "scratch_test_acc": full.get("scratch_test_acc"), "paired_difference": full.get("paired_difference"),
            "scratch_same_epochs_test_acc": spread(control)}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default="/tmp/ucf", help="synthetic mode: make_synth_ucf.py set (written when missing)")
    p.add_argument("--synth-script", default=None)
    p.add_argument("--train", default=None, help="real mode: class folders to fine-tune on (also pretrained on)")
    p.add_argument("--test", default=None, help="real mode: class folders to score on (not pretrained on unless "
                                                "--pretrain-on-test)")
    p.add_argument("--unlabelled", action="append", default=[], metavar="DIR",
                   help="real mode, repeatable: more videos to pretrain on (any layout, recursive, labels ignored; "
                        "files of --test are dropped unless --pretrain-on-test)")
    p.add_argument("--pretrain-on-test", action="store_true",
                   help="pretrain on the test videos too (transductive; their labels are never used)")
    p.add_argument("--tiny", action="store_true", help="CPU toy scale: a tiny VideoMAE, few epochs (synthetic mode: "
                                                       "on demo videos)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--parallel", type=int, default=1, help="seeds run at once, one process each, on the one GPU")
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--size", type=int, default=112)
    p.add_argument("--sampling-rate", type=int, default=None, help="frame stride (default: the backbone's, 4)")
    p.add_argument("--pretrain-epochs", type=int, default=50)
    p.add_argument("--curve", type=float, nargs="+", default=[0.25, 0.5, 1.0],
                   help="fractions of --pretrain-epochs after which the encoder is fine-tuned (one pretraining run)")
    p.add_argument("--pretrain-batch", type=int, default=32)
    p.add_argument("--repeats", type=int, default=4, help="views per decoded clip in pretraining")
    p.add_argument("--pretrain-lr", type=float, default=6e-4)
    p.add_argument("--finetune-epochs", type=int, default=20)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--hflip", type=float, default=None, help="fine-tuning flip probability (default: 0.5 real, "
                                                             "0 synthetic)")
    p.add_argument("--workers", type=int, default=None,
                   help="decode workers per process (default: flashvid's choice; cores/N - 1 with --parallel N)")
    p.add_argument("--cap-s", type=float, default=150, help="max_time of any single fit (a safety cap)")


def check_arguments(args: argparse.Namespace) -> None:
    if args.parallel < 1:
        raise BenchError(f"--parallel {args.parallel}: must be >= 1")
    if not args.curve or not all(0 < f <= 1 for f in args.curve):
        raise BenchError(f"--curve {args.curve}: fractions of --pretrain-epochs in (0, 1]")
    if args.pretrain_epochs < 1 or args.finetune_epochs < 1:
        raise BenchError("--pretrain-epochs and --finetune-epochs must be >= 1")


def run(args: argparse.Namespace, record: Record) -> None:
    import torch

    import flashvid

    check_arguments(args)
    budget = args.budget_s if args.budget_s is not None else 500
    if args.tiny:
        args.frames, args.size = 4, 32
        args.pretrain_epochs, args.finetune_epochs = min(args.pretrain_epochs, 6), min(args.finetune_epochs, 2)
        args.pretrain_batch, args.batch, args.repeats, args.workers = 8, 8, 2, 0
        args.pretrain_lr, args.lr = 3e-3, 3e-3
    elif args.workers is None and args.parallel > 1:
        args.workers = max(1, (os.cpu_count() or 2) // args.parallel - 1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    began, deadline = time.perf_counter(), time.time() + budget
    sets = prepare_data(args, out)
    data_seconds = time.perf_counter() - began
    record.info("mode", sets.mode)
    record.info("pretraining_set", sets.pretraining_set)
    epochs = curve_epochs(args)
    runs: list[dict[str, Any]] = []
    skipped: list[int] = []
    plain = argparse.Namespace(**{k: v for k, v in vars(args).items() if k != "module"})  # picklable
    waves = [args.seeds[i:i + args.parallel] for i in range(0, len(args.seeds), args.parallel)]
    wave_s: list[float] = []
    pool = None
    if args.parallel > 1 and len(args.seeds) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        pool = ProcessPoolExecutor(max_workers=args.parallel, mp_context=multiprocessing.get_context("spawn"))
    try:
        for wave in waves:
            if wave_s and time.time() + statistics.mean(wave_s) > deadline:
                skipped.extend(wave)
                continue
            w0 = time.perf_counter()
            if pool is None:
                results = [seed_run(plain, sets, seed, deadline) for seed in wave]
            else:
                futures = [pool.submit(seed_run, plain, sets, seed, deadline) for seed in wave]
                results = []
                for seed, future in zip(wave, futures):
                    try:
                        results.append(future.result())
                    except Exception as e:  # noqa: BLE001  (one seed failing keeps the others)
                        record.data["errors"][f"seed {seed}"] = f"{type(e).__name__}: {e}"
            wave_s.append(time.perf_counter() - w0)
            runs.extend(results)
            record.info("runs", runs)
    finally:
        if pool is not None:
            pool.shutdown()
    summary = summarise(runs, epochs)
    result = {
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() and not args.tiny else "cpu",
        "data": {"train": sets.train, "test": sets.test}, "data_seconds": round(data_seconds, 1),
        "train_videos": len(flashvid.data.list_videos(sets.train)),
        "test_videos": len(flashvid.data.list_videos(sets.test)),
        "curve_epochs": epochs, "parallel": args.parallel, "workers_per_process": args.workers,
        "runs": runs, "skipped_seeds_for_time": skipped, "summary": summary,
        "wall_s": round(time.perf_counter() - began, 1),
    }
    for key, value in result.items():
        record.info(key, value)
    for point in summary["curve"]:
        if point["seeds"]:
            group = f"pretrain {point['pretrain_epochs']} epochs"
            record.baseline("scratch, same GPU time", point["scratch_test_acc"]["mean"], "test acc", group,
                            seeds=point["seeds"])
            record.row("pretrained + fine-tuned", point["pretrained_test_acc"]["mean"], "test acc", group,
                       seeds=point["seeds"], pretrain_loss=point["pretrain_loss"]["mean"])
    control = summary["scratch_same_epochs_test_acc"]
    if control["values"]:
        record.row("scratch, fine-tuning epochs only", control["mean"], "test acc", "control",
                   seeds=len(control["values"]))
