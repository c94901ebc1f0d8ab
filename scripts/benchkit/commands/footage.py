"""The footage matrix in one call: loader, train and predict against their baselines.

The footage matrix in one call: loader, training and predict over every configuration, each against its
baseline measured in the same run (model-only training; the model's forward pass for predict).

The matrix (issue 19): models videomae_base,x3d_m; footage sets (every kind of SHARED/realclips and
flash_kinetics, used in place, and synthetic frame rates, portrait, bitrates, resolutions); store format (raw,
prepared, --prepare format=frames...); decode device; loader workers 8,16; steps per epoch 4,12,37,93; and any data
option as --data-override. The JSON is rewritten after every measurement; --budget-s bounds a device call.

    python scripts/bench.py footage --out OUT --shared .bench --sets all --workers 8,16 \\
        --steps-per-epoch 4,12,37,93 --prepare raw --prepare prepared --budget-s 540
    python scripts/bench.py footage --model tiny --sets synth:fps25 --synth-height 96 --synth-seconds 2 \\
        --batch-size 4 --steps 3 --warmup 1 --min-timed 2 --workers 1      # CPU smoke run
"""

from __future__ import annotations

import argparse

from .. import matrix
from ..record import Record
from .predict import add_predict_arguments


def add_arguments(p: argparse.ArgumentParser) -> None:
    matrix.add_arguments(p)
    add_predict_arguments(p)
    p.add_argument("--parts", default="loader,train,predict", help="which measurements (default %(default)s)")


def run(args: argparse.Namespace, record: Record) -> None:
    from .. import runner
    from ..record import BenchError

    parts = [x.strip() for x in args.parts.split(",") if x.strip()]
    bad = sorted(set(parts) - set(runner.PARTS))
    if bad:
        raise BenchError(f"--parts {bad[0]}: choose among {', '.join(runner.PARTS)}")
    runner.run(args, record, parts)
