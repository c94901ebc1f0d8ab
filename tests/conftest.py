"""Shared fixtures: real encoded videos written by flashvid's own demo generator, and the optional real clips."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))

REALCLIPS = Path(__file__).resolve().parents[2] / "shared" / "realclips"


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory) -> Path:
    """A small demo dataset: 4 motion classes, train/val/test, mp4 + avi, 64x80 px, 16 frames at 15 fps."""
    from flashvid.data import make_demo_dataset

    root = tmp_path_factory.mktemp("demo")
    return make_demo_dataset(root, videos_per_class={"train": 6, "val": 2, "test": 2}, num_frames=16,
                             height=64, width=80)


@pytest.fixture(scope="session")
def realclips() -> Path:
    """`../shared/realclips` (real-world files of many codecs): used in place, skipped when absent."""
    if not REALCLIPS.is_dir():
        pytest.skip(f"real clips not found at {REALCLIPS}")
    return REALCLIPS
