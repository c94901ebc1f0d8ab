"""Shared fixtures: real encoded videos written by flashvid's own demo generator, and the optional real clips."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

# Under pytest-xdist (scripts/test.sh: ``-n auto``) each worker gets its share of the cores, and so do the
# interpreters its tests start (they inherit OMP_NUM_THREADS): two workers with two threads each on two cores
# measured slower than one thread each.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
_THREADS = max(1, min(2, (os.cpu_count() or 1) // _WORKERS))
if _WORKERS > 1:
    os.environ.setdefault("OMP_NUM_THREADS", str(_THREADS))
torch.set_num_threads(_THREADS)


@pytest.fixture(autouse=True)
def _torch_threads_and_determinism():
    """Each test ends by giving the worker back its compute threads and deterministic algorithms off, whatever it
    set: a tiny training run sets 2 threads (tests/badvideos.py), Lightning's ``deterministic=True`` turns
    deterministic algorithms on for good. Left over, 2 workers on 2 cores each ran 2 OpenMP threads, and the
    backbone tests after them spent many times their CPU time spinning (x3d_l: 20 s instead of 0.6)."""
    yield
    torch.set_num_threads(_THREADS)
    torch.use_deterministic_algorithms(False)


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


# A worker's environment has COLUMNS=80 and LINES=24 that the main process's lacks (set on the way to the worker):
# the tests of a command's output width (no COLUMNS: its fixed width in a pipe) see the main process's instead.
@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:
    node.workerinput["terminal_size_env"] = {k: os.environ.get(k) for k in ("COLUMNS", "LINES")}


def pytest_configure(config: pytest.Config) -> None:
    for key, value in getattr(config, "workerinput", {}).get("terminal_size_env", {}).items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


# ------------------------------------------------------------------------------------------------ xdist groups
# Under ``--dist loadgroup`` (scripts/test.sh) each module runs whole on one xdist worker, so its module fixtures (a
# trained run, a reference run, generated videos) are built once, and its tests keep their order; but for
# SPREAD_MODULES, whose tests share no costly fixture and may run on any worker one by one.
#
# The modules are the scheduler's units here (ModuleScheduling), not xdist_group marks: pytest 9.2 gives items
# structured node ids, and xdist 3.8 still groups by appending "@group" to the old ``_nodeid`` field, which no
# longer changes the node id, so every mark-grouped test was spread alone (pytest-dev/pytest-xdist#1386): each
# worker built the module fixtures again.
SPREAD_MODULES = {"test_models.py"}
# Longest first (CPU seconds with ``--cpu-times``, measured on 2 cores), so that the last units handed out are
# short ones and both workers end together; unlisted modules follow in their own order, the spread tests last
# (they fill the gaps). A stale list costs time, never a test.
# (test_reports.py stays after test_data_sources.py, as in file order: run before it in one process, it leaves
# Lightning's "Seed set to" line on stderr, and test_from_csv_empty_labels_... counts one line too many.)
SLOWEST_MODULES = ("test_cli.py", "test_interruptions.py", "test_ddp.py", "test_export.py", "test_resume.py",
                   "test_bad_inputs.py", "test_loader.py", "test_decoding.py", "test_notebook.py",
                   "test_bench_tool.py", "test_doctor.py", "test_pretraining.py", "test_prepare.py",
                   "test_decode_savings.py")


def _module(nodeid: str) -> str:
    return nodeid.split("::")[0].rsplit("/", 1)[-1]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not getattr(config.option, "loadgroup", False):
        return  # the order matters to the scheduler only (set in each worker under --dist loadgroup)
    rank = {name: i for i, name in enumerate(SLOWEST_MODULES)}
    spread = len(rank) + 1

    def key(item: pytest.Item) -> int:
        module = _module(item.nodeid)
        return spread if module in SPREAD_MODULES else rank.get(module, len(rank))

    items.sort(key=key)  # stable: each module's tests keep their order


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ModuleScheduling(LoadScopeScheduling):
        """xdist's scope scheduling with a module as the scope (a test alone in SPREAD_MODULES), in the order
        the workers collected them (not xdist's reordering by the number of tests)."""

        def __init__(self, config: pytest.Config, log=None) -> None:
            super().__init__(config, log)
            config.option.loadscopereorder = False

        def _split_scope(self, nodeid: str) -> str:
            return nodeid if _module(nodeid) in SPREAD_MODULES else nodeid.split("::")[0]

    return ModuleScheduling(config, log)


# ------------------------------------------------------------------------------------------------ CPU time per test
# ``pytest --cpu-times`` prints each module's CPU seconds (this process's and its children's, user + system) and its
# wall seconds: on a shared machine the wall clock says little, the CPU time is what a test costs. Children count
# once waited for (subprocess.run, Popen.wait), so a subprocess test's interpreter start shows up in "child".
# Under xdist each worker measures its tests and the figures travel to the main process on the teardown report.
def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--cpu-times", action="store_true", help="print CPU seconds per test module (self + children)")


_CPU_TIMES: dict[str, list[float]] = {}


def _cpu_now() -> tuple[float, float, float]:
    import resource
    import time

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, kids.ru_utime + kids.ru_stime, time.perf_counter()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    if item.config.getoption("--cpu-times"):
        item.stash[_CPU_START] = _cpu_now()
    yield


_CPU_START = pytest.StashKey[tuple[float, float, float]]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    if call.when == "teardown" and _CPU_START in item.stash:
        spent = [b - a for a, b in zip(item.stash[_CPU_START], _cpu_now())]
        outcome.get_result().user_properties.append(("cpu_times", spent))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    for key, spent in report.user_properties:
        if key == "cpu_times" and report.when == "teardown":
            row = _CPU_TIMES.setdefault(report.nodeid.split("::")[0], [0.0, 0.0, 0.0, 0])
            for i, value in enumerate(spent):
                row[i] += value
            row[3] += 1


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if not _CPU_TIMES:
        return
    write = terminalreporter.write_line
    write(f"{'CPU seconds per module':<44} {'tests':>5} {'self':>7} {'child':>7} {'cpu':>7} {'wall':>7}")
    rows = sorted(_CPU_TIMES.items(), key=lambda kv: -(kv[1][0] + kv[1][1]))
    for name, (own, kids, wall, n) in [*rows, ("total", [sum(r[i] for _, r in rows) for i in range(4)])]:
        write(f"{name:<44} {int(n):>5} {own:>7.1f} {kids:>7.1f} {own + kids:>7.1f} {wall:>7.1f}")
