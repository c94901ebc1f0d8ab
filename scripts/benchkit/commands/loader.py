"""Training loader alone (clips/s), against what the model consumes (model-only training).

What the training loader alone produces (clips/s, no model), against the rate the model consumes (model-only
training): ratio >= 1 means the loader can feed the model on that configuration.

    python scripts/bench.py loader --model videomae_base --sets all --workers 8,16 --prepare raw --prepare prepared
"""

from __future__ import annotations

import argparse

from .. import matrix
from ..record import Record


def add_arguments(p: argparse.ArgumentParser) -> None:
    matrix.add_arguments(p, training=True)


def run(args: argparse.Namespace, record: Record) -> None:
    from .. import runner

    runner.run(args, record, ["loader"])
