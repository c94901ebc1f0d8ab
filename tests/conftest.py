"""Shared fixtures: real encoded videos written by flashvid's own demo generator, and the optional real clips."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))

REPO = Path(__file__).resolve().parents[1]
REALCLIPS = Path(__file__).resolve().parents[2] / "shared" / "realclips"


@pytest.fixture(params=["torchcodec", "pyav"])
def decoder(request: pytest.FixtureRequest) -> str:
    """Each test that takes ``decoder`` runs once per reader, so a break in either one fails the suite.

    torchcodec is skipped, with its load error, only where it cannot load (no FFmpeg libraries);
    ``FLASHVID_REQUIRE_TORCHCODEC=1`` (set by .ci/run, where setup.sh installs FFmpeg) makes that a failure.
    """
    if request.param == "torchcodec":
        from flashvid.data.decoding import torchcodec_status

        loads, why = torchcodec_status()
        if not loads:
            if os.environ.get("FLASHVID_REQUIRE_TORCHCODEC") == "1":
                pytest.fail(f"torchcodec does not load ({why}) and FLASHVID_REQUIRE_TORCHCODEC=1")
            pytest.skip(f"torchcodec does not load here: {why}")
    return request.param


_BLOCK_TORCHCODEC = '''
import importlib.abc, sys

class _NoTorchcodec(importlib.abc.MetaPathFinder):
    """Make torchcodec fail to import the way it does when FFmpeg's shared libraries are missing."""
    def find_spec(self, name, path=None, target=None):
        if name == "torchcodec" or name.startswith("torchcodec."):
            raise OSError("libavutil.so.59: cannot open shared object file (hidden by test)")
        return None

sys.meta_path.insert(0, _NoTorchcodec())
'''


@pytest.fixture
def env_without_torchcodec(tmp_path: Path) -> dict[str, str]:
    """Environment for a fresh interpreter (``subprocess``) whose ``sitecustomize`` makes torchcodec's import fail
    as it does without FFmpeg's shared libraries; it imports this checkout."""
    site = tmp_path / "site_without_torchcodec"
    site.mkdir()
    (site / "sitecustomize.py").write_text(_BLOCK_TORCHCODEC)
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(REPO)]))


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
