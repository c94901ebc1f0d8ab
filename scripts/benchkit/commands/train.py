"""Training clips/s end to end, against model-only (the same model fed from memory).

Training throughput, end to end against model-only (the same model and steps fed from memory), over the matrix.

Both go through the user's path (VideoClassificationData, VideoClassifier, flashvid.Trainer; on a GPU the
trainer=gpu defaults: bf16-mixed, GPU augmentation, VideoMAE compiled). Per configuration: clips/s, the share of
step time spent waiting for data, peak GPU memory; ratio = end to end / model-only.

    python scripts/bench.py train --model videomae_base,x3d_m --sets all --workers 8,16 --steps-per-epoch 4,12,37,93
    python scripts/bench.py train --model tiny --sets synth:fps25 --synth-height 96 --synth-seconds 2 --steps 3
"""

from __future__ import annotations

import argparse

from .. import matrix
from ..record import Record


def add_arguments(p: argparse.ArgumentParser) -> None:
    matrix.add_arguments(p)


def run(args: argparse.Namespace, record: Record) -> None:
    from .. import runner

    runner.run(args, record, ["train"])
