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


# ------------------------------------------------------------------------------------------------ CPU time per test
# ``pytest --cpu-times`` prints each module's CPU seconds (this process's and its children's, user + system) and its
# wall seconds: on a shared machine the wall clock says little, the CPU time is what a test costs. Children count
# once waited for (subprocess.run, Popen.wait), so a subprocess test's interpreter start shows up in "child".
def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--cpu-times", action="store_true", help="print CPU seconds per test module (self + children)")


_CPU_TIMES: dict[str, list[float]] = {}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    if not item.config.getoption("--cpu-times"):
        yield
        return
    import resource
    import time

    def now() -> tuple[float, float, float]:
        own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime, kids.ru_utime + kids.ru_stime, time.perf_counter()

    before = now()
    yield
    row = _CPU_TIMES.setdefault(item.nodeid.split("::")[0], [0.0, 0.0, 0.0, 0])
    for i, (a, b) in enumerate(zip(before, now())):
        row[i] += b - a
    row[3] += 1


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if not _CPU_TIMES:
        return
    write = terminalreporter.write_line
    write(f"{'CPU seconds per module':<44} {'tests':>5} {'self':>7} {'child':>7} {'cpu':>7} {'wall':>7}")
    rows = sorted(_CPU_TIMES.items(), key=lambda kv: -(kv[1][0] + kv[1][1]))
    for name, (own, kids, wall, n) in [*rows, ("total", [sum(r[i] for _, r in rows) for i in range(4)])]:
        write(f"{name:<44} {int(n):>5} {own:>7.1f} {kids:>7.1f} {own + kids:>7.1f} {wall:>7.1f}")
