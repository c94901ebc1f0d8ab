"""Train tiny_r2plus1d from scratch on flashvid's synthetic demo videos, on a CPU, in a couple of minutes.

    python scripts/train_demo.py --seed 0 --out demo_seed0.json

Makes the demo data if missing (4 motion classes: left, right, clockwise, counterclockwise; no single frame
tells them apart), trains, tests, predicts, and prints and writes (``--out``) accuracies and the wall time of
each phase. ``--num-frames 1`` trains the same model on single frames: the image-only control, which stays at
chance. The recipe below is the one measured in docs/benchmarks.md ("CPU demo training").
"""

from __future__ import annotations

import time

T_START = time.perf_counter()  # imports are part of the wall time a user waits for

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import lightning as L  # noqa: E402
import torch  # noqa: E402
from lightning.pytorch.callbacks import Callback  # noqa: E402

from flashvid import Trainer, VideoClassificationData, VideoClassifier, make_demo_dataset  # noqa: E402

RECIPE: dict[str, Any] = {
    "videos_per_class": {"train": 64, "val": 16, "test": 16},  # 96x96 px, 32 frames at 15 fps (demo defaults)
    "backbone": "tiny_r2plus1d",  # 8 frames, stride 1 at 15 fps, whole frame resized to 64x64
    "batch_size": 16,
    "learning_rate": 6e-3,  # AdamW, 10% warmup then cosine (VideoClassifier defaults)
    "weight_decay": 0.01,
    "epochs": 12,
    # no horizontal flip: it turns left into right and clockwise into counterclockwise
    "augmentation": {"hflip": 0.0, "scale": [0.5, 1.0], "short_side_jitter": 1.0},
}


class EpochLog(Callback):
    """One line per epoch (called after that epoch's validation)."""

    def __init__(self, t0: float):
        self.t0 = t0

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        m = trainer.callback_metrics
        print(f"epoch {trainer.current_epoch + 1:2d}/{trainer.max_epochs}  train loss {float(m['train/loss']):.3f}  "
              f"val acc {float(m['val/acc']):.3f}  {time.perf_counter() - self.t0:.0f}s", flush=True)


def main() -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", type=Path, default=None, help="demo data folder (default: demo_data/seed<seed>)")
    p.add_argument("--seed", type=int, default=0, help="seeds the demo videos and the training run")
    p.add_argument("--epochs", type=int, default=RECIPE["epochs"])
    p.add_argument("--num-frames", type=int, default=None, help="override the model's 8 frames (1: image-only)")
    p.add_argument("--out", type=Path, default=None, help="write the results here as JSON")
    args = p.parse_args()
    warnings.filterwarnings("ignore", category=FutureWarning)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # no GPU/TPU/tips banner
    root = args.root or Path("demo_data") / f"seed{args.seed}"

    # On a small CPU box, one loader process decodes while the main process computes with the other core(s):
    # more compute threads than free cores makes every step wait on preempted threads (several times slower).
    cpus = os.cpu_count() or 1
    workers = max(1, min(4, cpus // 4))
    torch.set_num_threads(max(1, cpus - workers))
    times = {"import": time.perf_counter() - T_START}

    t = time.perf_counter()
    make_demo_dataset(root, videos_per_class=RECIPE["videos_per_class"], seed=args.seed)
    times["data"] = time.perf_counter() - t

    L.seed_everything(args.seed, verbose=False)
    dm = VideoClassificationData.from_folders(
        train_folder=root / "train", val_folder=root / "val", test_folder=root / "test",
        batch_size=RECIPE["batch_size"], num_workers=workers,
        augmentation=RECIPE["augmentation"], seed=args.seed,
    )
    # clip settings given to the model reach the datamodule, predict() and checkpoints alike
    clip = {"num_frames": args.num_frames} if args.num_frames else None
    model = VideoClassifier(RECIPE["backbone"], labels=dm.labels, data=clip, learning_rate=RECIPE["learning_rate"],
                            weight_decay=RECIPE["weight_decay"])
    t = time.perf_counter()
    trainer = Trainer(max_epochs=args.epochs, accelerator="auto", devices=1, logger=False,
                      enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                      num_sanity_val_steps=0, callbacks=[EpochLog(t)])
    trainer.fit(model, datamodule=dm)
    times["train"] = time.perf_counter() - t
    val_acc = float(trainer.callback_metrics["val/acc"])

    t = time.perf_counter()
    test_acc = float(trainer.test(model, datamodule=dm, verbose=False)[0]["test/acc"])
    times["test"] = time.perf_counter() - t

    t = time.perf_counter()
    preds = model.predict(root / "test")
    times["predict"] = time.perf_counter() - t
    hits: dict[str, list[bool]] = {}
    for r in preds:  # the folder name is the true class
        hits.setdefault(Path(r["path"]).parent.name, []).append(r["label"] == Path(r["path"]).parent.name)
    predict_acc = sum(map(sum, hits.values())) / len(preds)
    times["total"] = time.perf_counter() - T_START

    result = {
        "seed": args.seed, "epochs": args.epochs, "num_frames": model.data_config.num_frames,
        "val_acc": round(val_acc, 4), "test_acc": round(test_acc, 4), "predict_acc": round(predict_acc, 4),
        "predict_acc_per_class": {c: round(sum(h) / len(h), 4) for c, h in sorted(hits.items())},
        "num_val": len(dm.samples["val"]), "num_test": len(preds),
        "times_s": {k: round(v, 1) for k, v in times.items()},
        "recipe": RECIPE, "root": str(root),
        "machine": {"cpus": cpus, "threads": torch.get_num_threads(), "loader_workers": workers,
                    "torch": torch.__version__, "python": platform.python_version(), "cuda": torch.cuda.is_available()},
    }
    print(json.dumps({k: result[k] for k in ("seed", "num_frames", "val_acc", "test_acc", "predict_acc",
                                             "predict_acc_per_class", "times_s")}))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
