"""Pretrain then fine-tune, against fine-tuning from scratch in the same GPU time (baseline).

Does flashvid pretrain pay? VideoMAE pretrained on the train split then fine-tuned, against the same
fine-tuning from random init given the same total GPU time (the baseline); several seeds, mean and spread.

Per seed: (1) self-supervised VideoMAE pretraining on train/ (labels ignored), (2) fine-tuning from its encoder
for --finetune-epochs, (3) the same fine-tuning from random init for as many epochs as fit in the time of
(1) + (2) (measured fit times; the cosine schedule then spans the longer run), (4) a control: random init
fine-tuned for only --finetune-epochs (does the short fine-tuning learn at all without the encoder?). Both arms
use identical settings otherwise and are tested on test/ with their final weights, one centre clip per video.

Scaled down to fit ~10 minutes on one H200 (16 cores) with 3 seeds: the make_synth_ucf.py set (300 train /
100 test clips, 10 motion classes), VideoMAE-small at 16 frames of 112 px (not 224), tens of epochs (VideoMAE
pretrains for thousands), no torch.compile (its warm-up would dominate runs this short), a learning rate for the
short pretraining schedule above the paper's rule (--pretrain-lr). The seeds that would not fit --budget-s
(default 500) are skipped and listed in the JSON.

    python scripts/bench.py pretrain --out OUT [--data /tmp/ucf] [--synth-script ../shared/bench/make_synth_ucf.py]
    python scripts/bench.py pretrain --out OUT --tiny     # CPU toy scale on flashvid's demo videos (minutes)
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..footage import REPO
from ..record import BenchError, Record

if TYPE_CHECKING:
    from flashvid import Trainer
TINY_ARCH = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, patch_size=8,
                 tubelet_size=2, decoder_hidden_size=32, decoder_num_hidden_layers=1, decoder_num_attention_heads=2,
                 decoder_intermediate_size=64)
ENCODER_KEYS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "patch_size",
                "tubelet_size")


def find_synth_script(given: str | None) -> Path:
    candidates = [given] if given else [REPO / ".bench" / "make_synth_ucf.py", REPO.parent / "shared" / "bench" /
                                        "make_synth_ucf.py", Path("/work/shared/bench/make_synth_ucf.py")]
    for c in candidates:
        if c and Path(c).is_file():
            return Path(c)
    raise BenchError(f"make_synth_ucf.py not found (tried {', '.join(map(str, candidates))}): "
                     "pass --synth-script PATH or --data DIR of an existing set")


def prepare_data(args: argparse.Namespace, out: Path) -> Path:
    import flashvid

    if args.tiny:  # flashvid's own generator: no OpenCV needed on a CPU box
        root = out / "demo_data"
        flashvid.make_demo_dataset(root, videos_per_class={"train": 6, "test": 3}, num_frames=16, height=48,
                                   width=64)
        return root
    root = Path(args.data)
    if not (root / "train").is_dir():
        script = find_synth_script(args.synth_script)
        print(f"bench pretrain: writing the synthetic UCF-shaped set into {root} with {script}", flush=True)
        subprocess.run([sys.executable, str(script), str(root)], check=True, stdout=subprocess.DEVNULL)
    return root


def trainer(args: argparse.Namespace, epochs: int) -> "Trainer":
    from flashvid import Trainer
    from flashvid.commands.config import default_precision

    accelerator = "cpu" if args.tiny else "auto"
    return Trainer(accelerator=accelerator, devices=1, precision=default_precision(accelerator), max_epochs=epochs,
                   max_time={"seconds": args.cap_s}, logger=False, enable_checkpointing=False,
                   enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                   deterministic=False, log_every_n_steps=5)


def timed_fit(t: "Trainer", model: Any, dm: Any) -> float:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    t.fit(model, datamodule=dm)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
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
    return {"num_frames": args.frames, "crop_size": args.size, "num_workers": args.workers}


def pretrain(args: argparse.Namespace, root: Path, seed: int, directory: Path) -> dict[str, Any]:
    import lightning as L

    from flashvid.pretraining import VideoMAEPretrainer, unlabelled_data

    L.seed_everything(seed, workers=True)
    arch = TINY_ARCH if args.tiny else {}
    dm = unlabelled_data(root / "train", batch_size=args.pretrain_batch, seed=seed, **clip_settings(args),
                         augmentation={"scale": (0.44, 1.0), "ratio": (0.857, 1.167), "hflip": 0.5})
    model = VideoMAEPretrainer("videomae_small", config=arch, data={"num_frames": args.frames, "crop_size": args.size},
                               repeated_sampling=args.repeats, learning_rate=args.pretrain_lr, compile=False)
    t = trainer(args, args.pretrain_epochs)
    seconds = timed_fit(t, model, dm)
    model.save_encoder(directory)
    release(t)
    return {"seconds": round(seconds, 2), "epochs": t.current_epoch, "steps": t.global_step,
            "final_loss": float(t.callback_metrics.get("train/loss", float("nan"))),
            "effective_batch": model.effective_batch_size(), "learning_rate": args.pretrain_lr}


def finetune(args: argparse.Namespace, root: Path, seed: int, epochs: int, encoder: Path | None) -> dict[str, Any]:
    import lightning as L

    from flashvid import VideoClassificationData, VideoClassifier

    L.seed_everything(seed, workers=True)
    # hflip off: the synthetic classes include left vs right and clockwise vs counterclockwise motion
    dm = VideoClassificationData.from_folders(train_folder=root / "train", test_folder=root / "test",
                                              batch_size=args.batch, seed=seed, **clip_settings(args),
                                              augmentation={"scale": (0.5, 1.0), "hflip": 0.0})
    arch = {k: v for k, v in (TINY_ARCH if args.tiny else {}).items() if k in ENCODER_KEYS}
    common = dict(labels=dm.labels, learning_rate=args.lr, weight_decay=0.05, warmup_ratio=0.1, compile=False)
    if encoder is not None:
        clf = VideoClassifier("videomae_small", pretrained=str(encoder), **common)
    else:  # the pretrained encoder's architecture, at random init
        clf = VideoClassifier("videomae_small", pretrained=False,
                              backbone_kwargs={"num_frames": args.frames, "image_size": args.size, **arch}, **common)
    t = trainer(args, epochs)
    seconds = timed_fit(t, clf, dm)
    train_loss = float(t.callback_metrics.get("train/loss", float("nan")))
    tested = t.test(clf, datamodule=dm, verbose=False)[0]
    release(t)
    return {"seconds": round(seconds, 2), "epochs": t.current_epoch, "steps": t.global_step,
            "test_acc": float(tested["test/acc"]), "test_mean_class_acc": float(tested["test/mean_class_acc"]),
            "final_train_loss": train_loss}


def spread(values: list[float]) -> dict[str, Any]:
    return {"mean": round(statistics.mean(values), 4) if values else None,
            "std": round(statistics.stdev(values), 4) if len(values) > 1 else None,
            "min": min(values, default=None), "max": max(values, default=None), "values": values}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default="/tmp/ucf", help="make_synth_ucf.py set (written there when missing)")
    p.add_argument("--synth-script", default=None)
    p.add_argument("--tiny", action="store_true", help="CPU toy scale: demo videos, a tiny VideoMAE, few epochs")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--size", type=int, default=112)
    p.add_argument("--pretrain-epochs", type=int, default=50)
    p.add_argument("--pretrain-batch", type=int, default=32)
    p.add_argument("--repeats", type=int, default=4, help="views per decoded clip in pretraining")
    p.add_argument("--pretrain-lr", type=float, default=6e-4)
    p.add_argument("--finetune-epochs", type=int, default=20)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--workers", type=int, default=None, help="decode workers (default: flashvid's choice)")
    p.add_argument("--cap-s", type=float, default=150, help="max_time of any single fit (a safety cap)")


def run(args: argparse.Namespace, record: Record) -> None:
    import torch

    import flashvid

    budget = args.budget_s if args.budget_s is not None else 500
    if args.tiny:
        args.frames, args.size = 4, 32
        args.pretrain_epochs, args.finetune_epochs = min(args.pretrain_epochs, 6), min(args.finetune_epochs, 2)
        args.pretrain_batch, args.batch, args.repeats, args.workers = 8, 8, 2, 0
        args.pretrain_lr, args.lr = 3e-3, 3e-3
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    root = prepare_data(args, out)
    data_seconds = time.perf_counter() - began
    runs: list[dict[str, Any]] = []
    skipped: list[int] = []
    for seed in args.seeds:
        elapsed = time.perf_counter() - began
        per_seed = (elapsed - data_seconds) / len(runs) if runs else 0.0
        if runs and elapsed + per_seed > budget:
            skipped.append(seed)
            continue
        s0 = time.perf_counter()
        pre = pretrain(args, root, seed, out / f"seed{seed}" / "encoder")
        tuned = finetune(args, root, seed, args.finetune_epochs, out / f"seed{seed}" / "encoder")
        per_epoch = tuned["seconds"] / max(tuned["epochs"], 1)
        scratch_epochs = max(args.finetune_epochs, round((pre["seconds"] + tuned["seconds"]) / per_epoch))
        scratch = finetune(args, root, seed, scratch_epochs, None)
        # control: random init with only the pretrained arm's fine-tuning epochs (is that schedule long enough to
        # learn at all? then a gap is the encoder's doing, not the short fine-tuning's)
        control = finetune(args, root, seed, args.finetune_epochs, None)
        runs.append({"seed": seed, "pretrain": pre, "pretrained_finetune": tuned, "scratch": scratch,
                     "scratch_same_epochs": control,
                     "gpu_seconds": {"pretrained_arm": round(pre["seconds"] + tuned["seconds"], 2),
                                     "scratch_arm": scratch["seconds"]},
                     "wall_s": round(time.perf_counter() - s0, 1)})
        print(f"seed {seed}: pretrained {tuned['test_acc']:.3f} ({pre['seconds'] + tuned['seconds']:.0f} s: "
              f"{pre['epochs']} pretrain + {tuned['epochs']} fine-tune epochs)  scratch {scratch['test_acc']:.3f} "
              f"({scratch['seconds']:.0f} s, {scratch['epochs']} epochs)  scratch at {control['epochs']} epochs "
              f"{control['test_acc']:.3f} (train loss {control['final_train_loss']:.2f})", flush=True)
    pre_acc = [r["pretrained_finetune"]["test_acc"] for r in runs]
    scratch_acc = [r["scratch"]["test_acc"] for r in runs]
    control_acc = [r["scratch_same_epochs"]["test_acc"] for r in runs]
    result = {
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() and not args.tiny else "cpu",
        "data": str(root), "data_seconds": round(data_seconds, 1),
        "train_videos": len(flashvid.data.list_videos(root / "train")),
        "test_videos": len(flashvid.data.list_videos(root / "test")),
        "runs": runs, "skipped_seeds_for_time": skipped,
        "summary": {"pretrained_test_acc": spread(pre_acc), "scratch_test_acc": spread(scratch_acc),
                    "scratch_same_epochs_test_acc": spread(control_acc),
                    "paired_difference": spread([round(a - b, 4) for a, b in zip(pre_acc, scratch_acc)])},
        "wall_s": round(time.perf_counter() - began, 1),
    }
    for key, value in result.items():
        record.info(key, value)
    if scratch_acc:
        record.baseline("scratch, same GPU time", round(statistics.mean(scratch_acc), 4), "test acc",
                        seeds=len(scratch_acc))
        record.row("pretrained + fine-tuned", round(statistics.mean(pre_acc), 4), "test acc", seeds=len(pre_acc))
        record.row("scratch, fine-tuning epochs only", round(statistics.mean(control_acc), 4), "test acc",
                   seeds=len(control_acc))
