"""The training loader across epochs: continuous epochs (workers fed the next epoch before this one ends) hand out
exactly the batches of a loader that drains at every epoch end, resume mid-epoch and survive an epoch cut short;
class-balanced epochs (``sampler=balanced``) draw classes evenly, deterministically, sharded and resumable."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch
from badvideos import build_run, make_clean_dataset
from lightning.pytorch.callbacks import Callback

from flashvid.data import VideoClassificationData, VideoSample
from flashvid.data.balanced import ClassBalancedOrder
from flashvid.data.loader import EpochShuffleSampler, ShardedEpochSampler

T, CROP = 4, 32


def _dm(root: Path, **kw) -> VideoClassificationData:
    args = dict(num_frames=T, crop_size=CROP, batch_size=4, num_workers=2, seed=5)
    args.update(kw)
    dm = VideoClassificationData.from_folders(root / "train", **args)
    dm.setup("fit")
    return dm


def _batches(loader, epoch: int, limit: int | None = None) -> list[tuple[list[int], torch.Tensor]]:
    loader.sampler.set_epoch(epoch)  # what Lightning calls each epoch
    out = []
    for n, b in enumerate(loader):
        out.append((b["index"].tolist(), b["video"]))
        if limit is not None and n + 1 == limit:
            break
    return out


def _same(a: list, b: list) -> bool:
    return len(a) == len(b) and all(ia == ib and torch.equal(va, vb) for (ia, va), (ib, vb) in zip(a, b))


def test_continuous_epochs_hand_out_the_drained_loaders_batches_and_feed_the_next_epoch_early(demo_root):
    """Three epochs (6 batches each, 2 workers): the same indices and clips as a loader whose workers drain at
    each epoch end; when an epoch's last batch is handed out, the workers already hold the next epoch's."""
    drained = _dm(demo_root, continuous_epochs=False).train_dataloader()
    assert not drained.streaming
    expected = [_batches(drained, e) for e in range(3)]
    loader = _dm(demo_root).train_dataloader()
    assert loader.streaming and len(loader) == 6
    for epoch in range(3):
        assert _same(_batches(loader, epoch), expected[epoch]), f"epoch {epoch}"
        assert loader._stream.handed[0] > epoch  # the next epoch's batches were queued before this one ended
    iterator = loader._iterator
    _batches(loader, 3)
    assert loader._iterator is iterator  # one worker iterator served every epoch: no reset


def test_continuous_epochs_resume_mid_epoch_and_restart_after_an_epoch_cut_short(demo_root):
    """A loader restored from the state after 2 batches hands out the rest of that epoch, then the next epoch; an
    epoch abandoned after one batch (``limit_train_batches``, ``max_steps``) leaves the next epoch whole."""
    drained = _dm(demo_root, continuous_epochs=False).train_dataloader()
    expected = [_batches(drained, e) for e in range(3)]

    first = _dm(demo_root).train_dataloader()
    assert _same(_batches(first, 1, limit=2), expected[1][:2])
    state = first.state_dict()
    assert state == {"epoch": 1, "position": 8, "seed": 5, "length": 24}
    resumed = _dm(demo_root).train_dataloader()
    resumed.load_state_dict(state)
    assert _same(_batches(resumed, 1), expected[1][2:])
    assert _same(_batches(resumed, 2), expected[2])

    cut = _dm(demo_root).train_dataloader()
    assert _same(_batches(cut, 0, limit=1), expected[0][:1])
    assert _same(_batches(cut, 1), expected[1])  # the stream stood inside epoch 0: the workers were reset
    assert _same(_batches(cut, 2), expected[2])


class _CrashAt(Callback):
    def __init__(self, step: int):
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            raise RuntimeError("crash")


def test_lightning_run_with_continuous_workers_resumes_mid_epoch_as_the_drained_run(tmp_path):
    """Through Lightning with 2 persistent workers and validation between epochs: a run that dies before step 7
    (mid-epoch 2) and resumes from its step-6 checkpoint ends with the weights and metrics of an uninterrupted run
    whose workers drain at every epoch end."""
    data = make_clean_dataset(tmp_path / "data", train_per_class=4, val_per_class=1)  # 4 steps an epoch

    def run(run_dir: Path, continuous: bool, crash: tuple = (), ckpt: str | None = None):
        trainer, model, dm = build_run(data, run_dir, every_n_steps=2, num_workers=2, extra_callbacks=crash)
        dm.continuous_epochs = continuous
        trainer.fit(model, dm, ckpt_path=ckpt)
        return trainer, model

    ref_trainer, ref = run(tmp_path / "ref", continuous=False)
    assert ref_trainer.global_step == 8
    with pytest.raises(RuntimeError, match="crash"):
        run(tmp_path / "run", continuous=True, crash=(_CrashAt(7),))
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    ckpt = torch.load(last, weights_only=True)
    assert ckpt["global_step"] == 6  # mid-epoch 2 (steps 5-8): 2 of its 4 batches done
    assert ckpt["loops"]["fit_loop"]["state_dict"]["combined_loader"][0]["position"] == 4
    trainer, model = run(tmp_path / "run", continuous=True, ckpt=str(last))
    assert trainer.global_step == 8 and trainer.train_dataloader.streaming
    for key, value in ref_trainer.callback_metrics.items():
        assert float(trainer.callback_metrics[key]) == pytest.approx(float(value), abs=1e-6), key
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, ref.state_dict()[name], atol=1e-6, rtol=1e-5, msg=name)


# ------------------------------------------------------------------ class-balanced epochs
LABELS = [0] * 2 + [1] * 5 + [2] * 14  # 2 / 5 / 14 videos: a 7x imbalance


def test_balanced_order_draws_classes_evenly_and_minority_videos_alike():
    order = ClassBalancedOrder(LABELS)
    for epoch in range(4):
        drawn = order.order(seed=3, epoch=epoch)
        assert len(drawn) == len(LABELS)
        counts = Counter(LABELS[i] for i in drawn)
        assert max(counts.values()) - min(counts.values()) <= 1, counts
        minority = Counter(i for i in drawn if LABELS[i] == 0)
        assert max(minority.values()) - min(minority.values()) <= 1  # its 2 videos each about 7/2 times
        assert drawn == order.order(seed=3, epoch=epoch)  # a function of (seed, epoch)
    assert order.order(3, 0) != order.order(3, 1) and order.order(3, 0) != order.order(4, 0)
    long = ClassBalancedOrder(LABELS, epoch_length=60).order(3, 0)
    assert len(long) == 60 and set(Counter(LABELS[i] for i in long).values()) == {20}


def test_balanced_shards_cover_the_one_process_order_and_resume_within_a_share():
    balanced = ClassBalancedOrder(LABELS)
    one = EpochShuffleSampler(len(LABELS), seed=3, balanced=balanced)
    one.set_epoch(2)
    shares = []
    for rank in range(2):
        s = ShardedEpochSampler(len(LABELS), 2, rank, seed=3, balanced=balanced)
        s.set_epoch(2)
        shares.append([i for i, _ in s])
        s.resume_at(2, 4)
        assert [i for i, _ in s] == shares[rank][4:]
    padded = one.order() + one.order()[:1]  # 21 samples on 2 ranks: 22, the head repeated
    assert sorted(shares[0] + shares[1]) == sorted(padded)
    assert one.order_state() == {"seed": 3, "length": 21, "sampler": "balanced", "videos": 21}


def test_balanced_sampler_on_an_imbalanced_folder_gives_balanced_batches_with_workers(tmp_path, caplog):
    """Real videos, 1 vs 5 per class, 2 continuous workers: each epoch's batches hold both classes equally, the
    same clips as without workers; a checkpoint of the shuffled order does not resume into the balanced one."""
    root = make_clean_dataset(tmp_path, train_per_class=5, val_per_class=0)
    for extra in sorted((root / "train" / "left").glob("*.mp4"))[1:]:
        extra.unlink()
    per_epoch = []
    for workers in (0, 2):
        loader = _dm(root, batch_size=2, num_workers=workers, sampler="balanced").train_dataloader()
        per_epoch.append([_batches(loader, e) for e in range(2)])
    assert all(_same(a, b) for a, b in zip(*per_epoch))
    labels = [s.label for s in _dm(root, num_workers=0).datasets["train"].samples]
    for epoch in per_epoch[1]:
        assert sorted(Counter(labels[i] for ids, _ in epoch for i in ids).values()) == [3, 3]
    loader = _dm(root, num_workers=0, sampler="balanced").train_dataloader()
    loader.load_state_dict({"epoch": 0, "position": 2, "seed": 5, "length": 6})
    assert "restarts from its beginning" in caplog.text


def test_sampler_options_are_checked_when_the_datamodule_is_built(demo_root):
    with pytest.raises(ValueError, match="unknown sampler 'even': choose one of shuffle, balanced"):
        VideoClassificationData.from_folders(demo_root / "train", sampler="even")
    with pytest.raises(ValueError, match="epoch_length applies to sampler=balanced"):
        VideoClassificationData.from_folders(demo_root / "train", epoch_length=100)
    with pytest.raises(ValueError, match="multi-label"):
        VideoClassificationData([VideoSample("a.mp4", 0), VideoSample("b.mp4", (0, 1))], sampler="balanced")
    with pytest.raises(ValueError, match="epoch_length must be >= 1"):
        VideoClassificationData.from_folders(demo_root / "train", sampler="balanced", epoch_length=0)


def test_a_script_holding_a_loader_with_persistent_workers_exits(demo_root):
    """The workers ignore SIGTERM (Ctrl-C and schedulers are the main process's to handle), which is how
    multiprocessing ends daemonic children at exit: a script still holding the loader hung there (was: forever)."""
    script = ("import sys\nfrom flashvid.data import VideoClassificationData\n"
              f"dm = VideoClassificationData.from_folders({str(demo_root / 'train')!r}, num_frames=4, crop_size=32, "
              "batch_size=4, num_workers=2)\n"
              "dm.setup('fit')\nloader = dm.train_dataloader()\nprint(len(list(loader)))\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0 and proc.stdout.strip() == "6", proc.stderr[-2000:]


def test_worker_niceness_lowers_the_loader_workers_priority_not_the_training_process(demo_root):
    """Each worker process runs at the training process's niceness plus ``worker_niceness``; the training process
    keeps its own."""
    own = os.getpriority(os.PRIO_PROCESS, 0)
    for niceness in (0, 7):
        loader = _dm(demo_root, worker_niceness=niceness).train_dataloader()
        next(iter(loader))
        workers = loader._iterator._workers  # the worker processes of the persistent iterator
        assert len(workers) == 2
        assert [os.getpriority(os.PRIO_PROCESS, w.pid) for w in workers] == [own + niceness] * 2
        loader._iterator._shutdown_workers()
    assert os.getpriority(os.PRIO_PROCESS, 0) == own
    with pytest.raises(ValueError, match="worker_niceness"):
        _dm(demo_root, worker_niceness=20)
