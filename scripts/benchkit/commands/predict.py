"""predict files/s per footage set, against the model's forward pass on in-memory clips.

``VideoClassifier.predict`` files/s per footage set (one centre clip per file), against the model's forward
pass on in-memory clips (files/s with no decoding). The transformers video-classification pipeline is a second
baseline with --pipeline (VideoMAE only).

    python scripts/bench.py predict --model videomae_base --sets flash_kinetics,synth:1080p --workers 15
"""

from __future__ import annotations

import argparse

from .. import matrix
from ..record import Record


def add_arguments(p: argparse.ArgumentParser) -> None:
    matrix.add_arguments(p, training=True)
    add_predict_arguments(p)


def add_predict_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("predict")
    g.add_argument("--predict-batch-size", type=int, default=8)
    g.add_argument("--predict-batches", type=int, default=10, help="batches of the model-only baseline")
    g.add_argument("--pipeline", action="store_true", help="also time transformers' video-classification pipeline "
                   "on the same files (VideoMAE models; a checkpoint saved locally, random weights)")
    g.add_argument("--pipeline-limit", type=int, default=None, help="files for the (slower) pipeline")


def run(args: argparse.Namespace, record: Record) -> None:
    from .. import runner

    runner.run(args, record, ["predict"])
    if args.pipeline:
        from .. import pipeline

        pipeline.compare(args, record)
