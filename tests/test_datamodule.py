"""The datamodule end to end on real encoded files: loader batches (uint8, crop sizes, multi-view test), the
uint8 -> normalised float hand-off inside a real Lightning run, per-file failures, and determinism across worker
counts."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from torch import nn
from torchvision.transforms import v2

from flashvid.data import DataConfig, VideoClassificationData

MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
T, CROP = 4, 32
SHORT = round(CROP * 256 / 224)  # the train loader's short side; the GPU crop takes CROP out of it


def _dm(demo_root: Path, **kw) -> VideoClassificationData:
    args = dict(num_frames=T, crop_size=CROP, mean=MEAN, std=STD, batch_size=4, num_workers=0, seed=5)
    args.update(kw)
    return VideoClassificationData.from_folders(demo_root / "train", demo_root / "val", demo_root / "test", **args)


def test_loader_batches_are_uint8_clips_of_the_requested_shape(demo_root, decoder: str):
    dm = _dm(demo_root, decoder=decoder)
    dm.setup("fit")
    item = dm.datasets["val"][0]
    assert item["video"].dtype == torch.uint8 and item["video"].shape == (T, 3, CROP, CROP)
    val = next(iter(dm.val_dataloader()))
    assert val["video"].dtype == torch.uint8 and val["video"].shape == (4, T, 3, CROP, CROP)
    assert val["label"].dtype == torch.long and val["failed"] == []
    assert [dm.id2label[int(y)] for y in val["label"]] == [Path(p).parent.name for p in val["path"]]
    train = next(iter(dm.train_dataloader()))
    assert train["video"].dtype == torch.uint8 and train["video"].shape == (4, T, 3, SHORT, SHORT)
    assert train["video"].float().std() > 5  # real picture content, not padding


def test_multi_view_test_batches(demo_root):
    """``num_clips`` x ``num_crops`` views per video, each a full clip: (B, V, T, C, H, W)."""
    dm = _dm(demo_root, num_clips=2, num_crops=3, eval_batch_size=2)
    dm.setup("test")
    batch = next(iter(dm.test_dataloader()))
    assert batch["video"].dtype == torch.uint8 and batch["video"].shape == (2, 6, T, 3, CROP, CROP)
    views = batch["video"][0].float()
    assert len({round(v.mean().item(), 3) for v in views}) > 1  # different clips/crops, not one view repeated
    out = dm.on_after_batch_transfer(batch, 0)["video"]  # no trainer: evaluation path
    assert out.dtype == torch.float32 and out.shape == (2, 6, T, 3, CROP, CROP)


class _Probe(L.LightningModule):
    """Records what training/validation steps receive after Lightning moved the batch to the device."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))
        self.seen: dict[str, list[torch.Tensor]] = {"train": [], "val": []}

    def training_step(self, batch, batch_idx):
        self.seen["train"].append(batch["video"].detach().clone())
        return (self.w * batch["video"].mean()) ** 2 + self.w**2

    def validation_step(self, batch, batch_idx):
        self.seen["val"].append(batch["video"].detach().clone())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_lightning_run_gets_normalised_float_of_the_crop_size(demo_root):
    """The loader ships uint8; ``on_after_batch_transfer`` turns it into augmented (train) or plainly normalised
    (val) float32 at the crop size, inside a real ``Trainer.fit``."""
    dm = _dm(demo_root)
    probe = _Probe()
    trainer = L.Trainer(accelerator="cpu", max_epochs=1, limit_train_batches=2, limit_val_batches=2,
                        num_sanity_val_steps=0, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(probe, datamodule=dm)
    assert len(probe.seen["train"]) == 2 and len(probe.seen["val"]) == 2
    for x in probe.seen["train"] + probe.seen["val"]:
        assert x.is_contiguous()
    for x in probe.seen["train"]:
        assert x.dtype == torch.float32 and x.shape == (4, T, 3, CROP, CROP)
        assert abs(x.mean().item()) < 3 and x.std().item() > 0.1  # normalised scale, not 0..255
    raw = [b["video"] for _, b in zip(range(2), dm.val_dataloader())]
    for x, r in zip(probe.seen["val"], raw):
        expected = (r.float() / 255 - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1)
        torch.testing.assert_close(x, expected)


def test_broken_files_are_reported_per_batch_not_raised(demo_root, tmp_path):
    good = next(demo_root.glob("test/*/*.mp4"))
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(good.read_bytes()[:2000])
    dm = VideoClassificationData.from_paths([good, truncated, tmp_path / "missing.avi"], num_frames=T,
                                            crop_size=CROP, eval_batch_size=3, num_workers=0)
    dm.setup("predict")
    batch = next(iter(dm.predict_dataloader()))
    assert batch["video"].shape == (1, T, 3, CROP, CROP) and batch["path"] == [str(good)]
    failed = {f["path"]: f["reason"] for f in batch["failed"]}
    assert set(failed) == {str(truncated), str(tmp_path / "missing.avi")}
    assert "not found" in failed[str(tmp_path / "missing.avi")] and failed[str(truncated)]


def _epoch(dm: VideoClassificationData, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
    loader = dm.train_dataloader()
    loader.sampler.set_epoch(epoch)  # what Lightning calls each epoch
    batches = list(loader)
    return torch.cat([b["video"] for b in batches]), torch.cat([b["index"] for b in batches])


def _torch_rng_crop() -> v2.Transform:
    return v2.Compose([v2.RandomCrop(40, pad_if_needed=True), v2.RandomHorizontalFlip()])


@pytest.mark.parametrize("transform", [None, _torch_rng_crop], ids=["default-crop", "torchvision-v2"])
def test_same_seed_same_clips_with_0_and_2_workers(demo_root, transform):
    """Clip start, short-side jitter and crop come from (seed, epoch, index) alone, not from which worker ran,
    both for flashvid's crop (Python's RNG) and a user's torchvision transform (torch's RNG)."""
    runs = {}
    transforms = {"train": transform()} if transform else None
    for workers in (0, 2):
        dm = _dm(demo_root, num_workers=workers, seed=11, persistent_workers=False, transforms=transforms)
        dm.setup("fit")
        runs[workers] = [_epoch(dm, 0), _epoch(dm, 1)]
    for epoch in (0, 1):
        (v0, i0), (v2, i2) = runs[0][epoch], runs[2][epoch]
        assert torch.equal(i0, i2)
        assert torch.equal(v0, v2), f"epoch {epoch}: clips differ between 0 and 2 workers"
    assert not torch.equal(runs[0][0][1], runs[0][1][1])  # a new epoch reshuffles
    other = _dm(demo_root, seed=12, transforms=transforms)
    other.setup("fit")
    assert not torch.equal(_epoch(other, 0)[0], runs[0][0][0])  # and another seed draws other clips


def test_model_settings_fill_in_unless_given_explicitly(demo_root):
    dm = _dm(demo_root, num_frames=None, crop_size=48)
    dm.configure_from_model({"num_frames": 8, "crop_size": 224, "sampling_rate": 2, "mean": [0.1, 0.2, 0.3]})
    cfg = dm.data_config
    assert (cfg.num_frames, cfg.sampling_rate, cfg.crop_size) == (8, 2, 48)
    assert cfg.mean == MEAN and cfg.short_side == round(48 * 256 / 224)
    with pytest.raises(ValueError, match="unknown data settings"):
        DataConfig.from_dict({"num_frame": 8})


def test_one_resolver_gives_the_classifier_datamodule_and_prepare_the_same_clip_settings(demo_root):
    """The backbone entry with the explicit settings on top, the same wherever the clip settings are merged."""
    from flashvid import VideoClassifier
    from flashvid.data import resolve_clip_config
    from flashvid.data.prepare import model_data_config
    from flashvid.models import backbone_clip_settings, get_backbone_spec

    overrides = {"num_frames": 4, "crop_size": 32, "mean": [0.1, 0.2, 0.3]}
    cfg = resolve_clip_config(backbone_clip_settings("tiny_r2plus1d"), overrides)
    spec = get_backbone_spec("tiny_r2plus1d").data
    assert (cfg.num_frames, cfg.crop_size, cfg.mean) == (4, 32, (0.1, 0.2, 0.3))
    assert (cfg.sampling_rate, cfg.std) == (spec.sampling_rate, spec.std)
    assert VideoClassifier("tiny_r2plus1d", labels=["a", "b"], data=overrides).data_config == cfg
    dm = _dm(demo_root, std=None, **overrides)
    dm.configure_from_model(spec)
    assert dm.data_config == cfg
    assert model_data_config({"_target_": "x", "train_folder": "videos", **overrides, "std": None},
                             "tiny_r2plus1d") == cfg
    with pytest.raises(ValueError, match="unknown data settings"):
        resolve_clip_config(backbone_clip_settings("tiny_r2plus1d"), {"num_frame": 8})


@pytest.mark.parametrize("stage, workers, says", [("test", 1, "CPU testing with 1 decode worker:"),
                                                  ("predict", 2, "CPU prediction with 2 decode workers:"),
                                                  ("fit", 1, "CPU training with 1 decode worker:")])
def test_cpu_core_sharing_log_names_the_stage(demo_root, caplog, stage: str, workers: int, says: str):
    """``flashvid test`` said "CPU training with 1 decode workers": the line says what the stage does, in English."""
    import logging
    import os

    dm = _dm(demo_root, num_workers=workers)
    dm.trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(max(os.cpu_count() or 1, workers + 1))  # more threads than the workers leave room for
    try:
        with caplog.at_level(logging.INFO, logger="flashvid"):
            dm.setup(stage)
    finally:
        torch.set_num_threads(threads)
    lines = [r.getMessage() for r in caplog.records if "decode worker" in r.getMessage()]
    assert len(lines) == 1 and says in lines[0], lines


def test_compute_threads_come_back_after_the_run(demo_root) -> None:
    """Decode workers on the CPU take compute threads from torch for the run; they stayed taken afterwards, so a
    later run in the same process (a notebook, the next test) computed on fewer threads, with other rounding, than
    the same run alone (an exact-resume test failed only after other tests)."""
    import os

    threads = torch.get_num_threads()
    torch.set_num_threads(max(os.cpu_count() or 1, 2))  # more than 1 decode worker leaves room for
    try:
        before = torch.get_num_threads()
        dm = _dm(demo_root, num_workers=1)
        dm.trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False)
        dm.setup("test")
        assert torch.get_num_threads() < before  # the workers' share was taken for the run
        dm.teardown("test")
        assert torch.get_num_threads() == before
    finally:
        torch.set_num_threads(threads)
