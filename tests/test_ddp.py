"""``flashvid train trainer=ddp`` through the command line on the CPU: two processes (gloo) on tiny real videos.

Evaluation must count each video once under any number of ranks: Lightning's ``DistributedSampler`` pads an uneven
split by repeating videos, so the val/test splits here have an odd number of files. The reference is the same
checkpoint evaluated in one process.

Training resumes exactly mid-epoch under DDP too: each rank's loader shards the epoch's order itself and skips within
its own share, so a run killed with ``kill -9`` mid-epoch and resumed ends as the uninterrupted DDP run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from badvideos import write_good
from lightning.pytorch.trainer.states import RunningStage

from flashvid.data import EpochShuffleSampler, VideoClassificationData
from flashvid.data.loader import ShardedEpochSampler

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
import soak_resume as soak  # noqa: E402

# (left, right); test also gets one broken file. 11 train videos: 6 per rank on 2 ranks (one padded), 3 steps per
# epoch at batch 2, so every train file is seen despite drop_last
COUNTS = {"train": (6, 5), "val": (3, 2), "test": (2, 2)}


@pytest.fixture(scope="module")
def ddp_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ddp_data")
    rng = np.random.default_rng(1)
    for split, counts in COUNTS.items():
        for motion, n in zip(("left", "right"), counts, strict=True):
            for i in range(n):
                write_good(root / split / motion / f"{motion}_{i}.mp4", motion, rng, num_frames=8)
    # 5 test files: rank 0 decodes 3, rank 1 the 2 at odd positions of the sorted list, this one among them
    (root / "test/left/left_0_broken.mp4").touch()
    return root


def ddp_args(data: Path, run: Path) -> list[str]:
    """Two gloo processes train 2 epochs (3 steps each), validate and test; the arguments of every DDP run here."""
    args = [a for a in soak.train_args(data, run, workers=0, epochs=2) if a != "test_after_training=false"]
    return [*args, f"data.test_folder={data / 'test'}", "model.max_failed_fraction=0.5", "trainer=ddp",
            "trainer.devices=2", "seed=5"]


@pytest.fixture(scope="module")
def ddp_run(ddp_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One uninterrupted DDP run through the CLI (two process starts of ~8 s each: shared by the tests that read
    it): its run directory and its output."""
    cwd = tmp_path_factory.mktemp("ddp_run")
    run = cwd / "run"
    # its own session, so a hang kills both ranks (rank 1 is rank 0's child), not only rank 0
    proc = soak.start(ddp_args(ddp_data, run), cwd)
    try:
        stdout, stderr = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        pytest.fail(f"DDP run hung for 300 s\n{stdout[-3000:]}\n{stderr[-5000:]}")
    assert proc.returncode == 0, f"{stdout[-3000:]}\n{stderr[-5000:]}"
    return run, stdout + stderr


def test_ddp_train_on_two_cpu_processes_counts_each_video_once(ddp_data: Path, ddp_run: tuple[Path, str],
                                                             tmp_path: Path) -> None:
    """Two gloo processes train, validate and test through the CLI into one run directory; val/test metrics
    equal a one-process evaluation of the same checkpoint (5 val and 5 test files: padding would score 6), and
    the broken file, decoded on one rank only, is listed once in failures.json."""
    run, output = ddp_run
    assert "Starting with 2 processes" in output
    assert sorted(p.name for p in run.parent.iterdir()) == ["run"]  # one run directory, not one per rank
    metrics = json.loads((run / "metrics.json").read_text())
    assert {"best.ckpt", "last.ckpt"} <= {p.name for p in (run / "checkpoints").iterdir()}

    from flashvid import Trainer, VideoClassificationData, VideoClassifier

    best, last = run / "checkpoints" / "best.ckpt", run / "checkpoints" / "last.ckpt"
    assert torch.load(best, map_location="cpu", weights_only=True)["flashvid"]["labels"] == ["left", "right"]

    def load(path: Path) -> VideoClassifier:
        return VideoClassifier.load_from_checkpoint(path, map_location="cpu", weights_only=True)
    dm = VideoClassificationData.from_folders(ddp_data / "train", ddp_data / "val", ddp_data / "test",
                                              batch_size=2, num_workers=0)
    trainer = Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                      enable_model_summary=False, default_root_dir=str(tmp_path / "one"))
    val = trainer.validate(load(last), datamodule=dm, verbose=False)[0]  # the final weights: the last validation's
    test = trainer.test(load(best), datamodule=dm, verbose=False)[0]  # the run tests its best checkpoint
    assert "val/acc5" not in metrics["final"] and "test/acc5" not in metrics["test"]  # 2 classes: no top-5
    for name in ("val/acc", "val/mean_class_acc"):
        assert metrics["final"][name] == pytest.approx(val[name], abs=1e-6), (name, metrics["final"], val)
    for name in ("test/acc", "test/mean_class_acc"):
        assert metrics["test"][name] == pytest.approx(test[name], abs=1e-6), (name, metrics["test"], test)
    assert metrics["final"]["val/loss"] == pytest.approx(val["val/loss"], rel=1e-4)
    assert metrics["test"]["test/loss"] == pytest.approx(test["test/loss"], rel=1e-4)
    n_val, n_test = sum(COUNTS["val"]), sum(COUNTS["test"])
    assert (metrics["final"]["val/acc"] * n_val) == pytest.approx(round(metrics["final"]["val/acc"] * n_val))
    assert (metrics["test"]["test/acc"] * n_test) == pytest.approx(round(metrics["test"]["test/acc"] * n_test))

    failures = json.loads((run / "failures.json").read_text())
    broken = str(ddp_data / "test/left/left_0_broken.mp4")
    assert [f["path"] for f in failures["failed"]] == [broken]
    # found by rank 1 (its log has the warning, rank 0's does not), reported by rank 0
    assert broken in (run / "train_ddp_process_1.log").read_text() and broken not in (run / "train.log").read_text()
    assert failures["num_seen"] == sum(map(sum, COUNTS.values())) + 1 == metrics["failed_files"]["num_seen"]


@pytest.mark.parametrize(("length", "ranks"), [(11, 2), (10, 4), (2, 3)])
def test_sharded_sampler_covers_every_index_and_resumes_within_each_rank(length: int, ranks: int) -> None:
    """Every rank shuffles the whole split alike (seed + epoch): dealt round-robin, the equal-length shards give back
    the one-process order, padded with its head as ``DistributedSampler`` pads. A resume at any position of a rank's
    share yields exactly the rest of that share, once."""
    for epoch in (0, 1):
        one = EpochShuffleSampler(length, seed=3)
        one.set_epoch(epoch)
        order = [i for i, _ in one]
        shards = []
        for rank in range(ranks):
            sampler = ShardedEpochSampler(length, ranks, rank, seed=3)
            sampler.set_epoch(epoch)
            keys = list(sampler)
            assert {e for _, e in keys} == {epoch} and len(keys) == len(sampler) == -(-length // ranks)
            shards.append([i for i, _ in keys])
        dealt = [shard[k] for k in range(len(shards[0])) for shard in shards]
        assert dealt == (order * ranks)[: len(dealt)] and set(dealt) == set(range(length))
        for rank, shard in enumerate(shards):
            for start in range(len(shard) + 1):
                sampler = ShardedEpochSampler(length, ranks, rank, seed=3)
                sampler.set_epoch(epoch)
                sampler.resume_at(epoch, start)
                assert [i for i, _ in sampler] == shard[start:]
                assert [i for i, _ in sampler] == shard  # the resume applies to one pass only


def test_ddp_train_loader_is_kept_by_lightning_and_resumes_within_the_rank(
        ddp_data: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The training loader of a 2-process DDP trainer, after Lightning prepared it as its fit loop does: Lightning
    keeps it (no ``DistributedSamplerWrapper``), and a loader restored from its state after 2 of its 3 batches
    hands the training loop exactly the rest of this rank's share (was: the whole share again). A position saved
    with another number of processes names no place in this rank's share: that epoch restarts, with a warning."""
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    assert trainer.world_size == 2 and trainer.global_rank == 0

    def prepared_loader(epoch: int):
        dm = VideoClassificationData.from_folders(ddp_data / "train", batch_size=2, num_workers=0, seed=7,
                                                  num_frames=4, crop_size=32)
        dm.trainer = trainer
        dm.setup("fit")
        loader = trainer._data_connector._prepare_dataloader(dm.train_dataloader(), shuffle=True,
                                                             mode=RunningStage.TRAINING)
        loader.sampler.set_epoch(epoch)
        return dm, loader

    dm, loader = prepared_loader(epoch=1)
    batches = iter(loader)
    seen = [i for _, batch in zip(range(2), batches) for i in batch["index"].tolist()]
    state = loader.state_dict()
    rest = [i for batch in batches for i in batch["index"].tolist()]

    _, resumed = prepared_loader(epoch=1)
    resumed.load_state_dict(state)
    assert [i for batch in resumed for i in batch["index"].tolist()] == rest
    one = EpochShuffleSampler(len(dm.datasets["train"]), seed=7)
    one.set_epoch(1)
    assert seen + rest == [i for i, _ in one][::2]  # rank 0: every other index of the one-process order
    assert state == {"epoch": 1, "position": 4, "seed": 7, "length": 11, "num_replicas": 2}
    assert type(loader.sampler) is ShardedEpochSampler and len(loader) == 3  # kept by Lightning, not wrapped

    _, other = prepared_loader(epoch=1)
    other.load_state_dict({**state, "num_replicas": 4})
    assert [i for batch in other for i in batch["index"].tolist()] == seen + rest
    assert "num_replicas 4" in caplog.text and "restarts from its beginning" in caplog.text


def test_ddp_kill9_mid_epoch_resume_matches_uninterrupted_run(ddp_data: Path, ddp_run: tuple[Path, str],
                                                             tmp_path: Path) -> None:
    """``flashvid train trainer=ddp`` on 2 CPU processes, killed with SIGKILL (the whole process group) mid-epoch
    after a mid-epoch ``last.ckpt``, then ``resume=true``: the run ends with the uninterrupted DDP run's validation
    and test metrics and weights (was: the interrupted epoch started over, shuffled anew)."""
    def args(run: Path) -> list[str]:
        return ddp_args(ddp_data, run)

    run, marker = tmp_path / "run", tmp_path / "pace"
    proc = soak.start([*args(run), *soak.pace_args(marker), "+callbacks.pace.stall_at=5"], tmp_path)
    try:
        assert soak.wait_for(Path(f"{marker}.step"), proc, timeout=300, check=lambda text: text == "5"), \
            proc.communicate()[1][-3000:]
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=60)
    last = run / "checkpoints" / "last.ckpt"
    ckpt = torch.load(last, weights_only=True)
    assert ckpt["global_step"] == 4  # epoch 2 (steps 4-6): 1 of its 3 batches done

    resumed = soak.run([*args(run), "resume=true"], tmp_path, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert soak.compare(soak.outcome(run), soak.outcome(ddp_run[0])) == []
    # rank 0's position, written for all: every rank took the same number of samples of its own share
    loader_state = {"epoch": 1, "position": 2, "seed": 5, "length": 11, "num_replicas": 2}
    assert ckpt["callbacks"]["ExactResume"]["train_loader"] == loader_state
    assert ckpt["loops"]["fit_loop"]["state_dict"]["combined_loader"] == [loader_state]
    assert len(ckpt["callbacks"]["ExactResume"]["rank_rng"]) == 2  # each rank's generators, for its own resume


def _rank_rng_roundtrip(rank: int, world: int, init: str, ckpt: str, out: str) -> None:
    import random

    import torch.distributed as dist

    from flashvid.callbacks import gather_rng_states, own_rng_states, rng_states, set_rng_states
    from flashvid.checkpoint import to_safe

    dist.init_process_group("gloo", init_method=f"file://{init}", rank=rank, world_size=world)
    torch.manual_seed(100 + rank)  # ranks whose generators differ, as per-GPU generators do
    random.seed(100 + rank)
    np.random.seed(100 + rank)
    saved = gather_rng_states()  # what ExactResume.state_dict does on every rank; rank 0 writes the checkpoint
    if rank == 0:
        torch.save(to_safe({**rng_states(), "rank_rng": saved}), ckpt)
    expected = [torch.rand(3).tolist(), random.random(), float(np.random.rand())]
    dist.barrier()
    torch.manual_seed(0)  # the resumed process starts from other states
    random.seed(0)
    np.random.seed(0)
    set_rng_states(own_rng_states(torch.load(ckpt, weights_only=True), rank, world))
    got = [torch.rand(3).tolist(), random.random(), float(np.random.rand())]
    Path(out, f"{rank}.json").write_text(json.dumps({"expected": expected, "got": got}))
    dist.destroy_process_group()


def test_each_rank_resumes_its_own_random_generators(tmp_path: Path) -> None:
    """The checkpoint (written by rank 0, loaded by all) carries every rank's generator states; each rank continues
    its own draws, not rank 0's (which a GPU's generator on rank 1 is not)."""
    import torch.multiprocessing as mp

    # forked, not spawned: a spawned rank imports this module, and so Lightning, afresh (~10 CPU s each)
    mp.start_processes(_rank_rng_roundtrip, nprocs=2, join=True, start_method="fork",
                       args=(2, str(tmp_path / "init"), str(tmp_path / "rng.ckpt"), str(tmp_path)))
    runs = [json.loads((tmp_path / f"{r}.json").read_text()) for r in range(2)]
    for r in runs:
        assert r["got"] == r["expected"]
    assert runs[0]["expected"] != runs[1]["expected"]
