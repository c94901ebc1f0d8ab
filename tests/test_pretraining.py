"""``flashvid pretrain``: VideoMAE masked-autoencoder pretraining, then fine-tuning from what it writes.

A tiny VideoMAE (hidden 32, one layer, 4 frames of 32 px in 8 px patches) pretrains on the demo videos through the
command line (in-process: the same Hydra app, without a new interpreter per run), then fine-tunes as
``model=videomae_small model.pretrained=RUN/encoder``. The runs reconstruct plain pixels (norm_pix_loss=false):
per-patch normalised targets of the demo's flat backgrounds are mostly compression noise, so that loss barely
moves in a few steps of a model this small. The mask tests check tube masking itself.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from flashvid.cli import main
from flashvid.pretraining import VideoMAEPretrainer, tube_mask

TINY = ("{hidden_size:32,num_hidden_layers:1,num_attention_heads:2,intermediate_size:64,patch_size:8,tubelet_size:2,"
        "decoder_hidden_size:32,decoder_num_hidden_layers:1,decoder_num_attention_heads:2,decoder_intermediate_size:64}")
EPOCHS = 4


def pretrain_args(demo_root: Path, run: Path, *extra: str) -> list[str]:
    return ["pretrain", f"data.train_folder={demo_root / 'train'}", f"model.config={TINY}", "data.num_frames=4",
            "data.crop_size=32", "data.batch_size=8", "data.num_workers=0", "model.learning_rate=3e-3",
            "model.norm_pix_loss=false", "model.repeated_sampling=2", f"trainer.max_epochs={EPOCHS}",
            "trainer.log_every_n_steps=1", "trainer.deterministic=true", "logger=csv", "callbacks=none", "seed=7",
            f"hydra.run.dir={run}", *extra]


@pytest.fixture(scope="module")
def pretrained(demo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("pretrain") / "run"
    assert main(pretrain_args(demo_root, run)) == 0
    return run


def _losses(run: Path) -> list[float]:
    import csv

    with open(run / "csv" / "metrics.csv") as f:
        return [float(r["train/loss"]) for r in csv.DictReader(f) if r.get("train/loss")]


def test_tube_mask_hides_the_same_patches_in_every_frame_at_the_ratio() -> None:
    torch.manual_seed(0)
    mask = tube_mask(6, 4, 49, 0.9)
    assert mask.shape == (6, 4 * 49) and mask.dtype == torch.bool
    per_frame = mask.view(6, 4, 49)
    assert (per_frame.sum(-1) == int(0.9 * 49)).all()  # 44 of 49 patches hidden in every frame of every clip
    assert (per_frame == per_frame[:, :1]).all()  # tubes: the same positions through time
    assert len({tuple(m.tolist()) for m in per_frame[:, 0]}) == 6  # each clip draws its own positions
    assert tube_mask(2, 8, 196, 0.75).sum(1).tolist() == [8 * 147] * 2
    with pytest.raises(ValueError, match="mask_ratio"):
        tube_mask(1, 2, 4, 0.1)  # hides nothing


def test_pretrain_model_masks_at_the_configured_ratio() -> None:
    """The model's own mask (what training_step feeds) follows mask_ratio and the clip's token grid."""
    model = VideoMAEPretrainer("videomae_small", config={"hidden_size": 32, "num_hidden_layers": 1,
                                                         "num_attention_heads": 2, "intermediate_size": 64,
                                                         "patch_size": 8, "decoder_num_hidden_layers": 1},
                               data={"num_frames": 4, "crop_size": 32}, mask_ratio=0.75)
    assert model.mask_shape == (2, 16)
    out = model(torch.randn(3, 4, 3, 32, 32))
    assert out.logits.shape == (3, 2 * 12, 2 * 8 * 8 * 3)  # 12 of 16 tubes per tubelet reconstructed


def test_pretrainer_accounts_for_undecodable_files_as_the_classifier_does() -> None:
    """Failed files are counted and reported (failures.json) and stop the run past ``max_failed_fraction``; a
    batch with no decodable clip still gives a loss that reaches every parameter (DDP ranks stay in step)."""
    from flashvid.classifier import TooManyFailedFiles

    model = VideoMAEPretrainer("videomae_small", config={"hidden_size": 32, "num_hidden_layers": 1,
                                                         "num_attention_heads": 2, "intermediate_size": 64,
                                                         "patch_size": 8, "decoder_num_hidden_layers": 1},
                               data={"num_frames": 4, "crop_size": 32}, max_failed_fraction=0.4)
    assert model.failure_report() == {"num_failed": 0, "num_seen": 0, "failed": []}
    batch = {"video": None, "path": ["good.mp4"], "failed": [{"path": "gone.mp4", "reason": "file not found"}]}
    loss = model.training_step(batch, 0)
    loss.backward()
    assert loss.item() == 0.0
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    assert model.failure_report() == {"num_failed": 1, "num_seen": 2,
                                      "failed": [{"path": "gone.mp4", "reason": "file not found"}]}
    with pytest.raises(TooManyFailedFiles, match=r"1 of 2 videos \(50%\)(.|\n)*gone.mp4: file not found"):
        model.on_train_epoch_end()


@pytest.mark.slow
def test_pretrain_then_finetune(pretrained: Path, demo_root: Path, tmp_path: Path) -> None:
    """The loss falls; RUN/encoder is the pretrained encoder; videomae_small fine-tunes from it through the CLI."""
    from flashvid import VideoClassifier

    losses = _losses(pretrained)
    assert len(losses) >= 3 * EPOCHS - 1
    first, last = sum(losses[:4]) / 4, sum(losses[-4:]) / 4
    assert last < 0.9 * first, f"pretraining loss did not fall: {losses}"
    metrics = json.loads((pretrained / "metrics.json").read_text())
    assert metrics["epochs"] == EPOCHS and metrics["effective_batch_size"] == 16

    # RUN/encoder holds the pretrained encoder of last.ckpt minus the pretraining-only final norm, and
    # videomae_small fine-tuning starts from exactly those tensors
    pretrainer = VideoMAEPretrainer.load_from_checkpoint(pretrained / "checkpoints" / "last.ckpt", map_location="cpu")
    trained = {k: v for k, v in pretrainer.model.videomae.state_dict().items() if not k.startswith("layernorm.")}
    assert len(trained) > 10
    labels = ["clockwise", "counterclockwise", "left", "right"]
    clf = VideoClassifier("videomae_small", labels=labels, pretrained=str(pretrained / "encoder"))
    loaded = clf.backbone.model.videomae.state_dict()
    assert set(loaded) == set(trained) and all(torch.equal(loaded[k], trained[k]) for k in trained)
    assert (clf.data_config.num_frames, clf.data_config.crop_size) == (4, 32)  # the pretrained clip, not 16x224
    assert all(m.training for m in clf.modules())  # from_pretrained's eval mode would silence dropout / drop path
    with pytest.raises(ValueError, match="does not fit"):  # another width: refused, not silently re-initialised
        VideoClassifier("videomae_small", labels=labels, pretrained=str(pretrained / "encoder"),
                        backbone_kwargs={"hidden_size": 48})

    run = tmp_path / "finetune"
    assert main(["train", "model=videomae_small", f"model.pretrained={pretrained / 'encoder'}",
                 f"data.train_folder={demo_root / 'train'}", f"data.val_folder={demo_root / 'val'}",
                 f"data.test_folder={demo_root / 'test'}", "data.batch_size=8", "data.num_workers=0",
                 "trainer.max_epochs=1", "logger=csv", f"hydra.run.dir={run}"]) == 0
    result = json.loads((run / "metrics.json").read_text())
    assert result["test"] is not None and 0.0 <= result["test"]["test/acc"] <= 1.0
    assert f"loaded {len(trained)} of {len(trained) + 4} tensors" in (run / "train.log").read_text()

    # the fine-tuned checkpoint carries the encoder's architecture (not videomae_small's 384 x 16 x 224): test,
    # predict and export read it back without RUN/encoder, and the export rebuilds the same model
    ckpt = run / "checkpoints" / "last.ckpt"
    assert main(["test", f"ckpt_path={ckpt}", f"data.test_folder={demo_root / 'test'}",
                 f"hydra.run.dir={tmp_path / 'test'}"]) == 0
    assert json.loads((tmp_path / "test" / "test_metrics.json").read_text())["num_videos"] == 8
    assert main(["predict", f"ckpt_path={ckpt}", f"inputs=[{demo_root / 'test' / 'left'}]",
                 f"output={tmp_path / 'preds.json'}", f"hydra.run.dir={tmp_path / 'p'}"]) == 0
    assert main(["export", f"ckpt_path={ckpt}", f"out={tmp_path / 'export'}", f"hydra.run.dir={tmp_path / 'e'}"]) == 0
    from flashvid.export import load_exported
    from flashvid.loading import load_classifier

    model = load_classifier(ckpt)
    assert model.backbone.model.config.hidden_size == 32 and model.data_config.num_frames == 4
    video = torch.randint(0, 255, (1, 4, 3, 32, 32), dtype=torch.uint8)
    torch.testing.assert_close(load_exported(tmp_path / "export")(video), model.eval()(video))


@pytest.mark.slow
def test_pretrain_resumes_exactly_after_ctrl_c(pretrained: Path, demo_root: Path, tmp_path: Path) -> None:
    """Ctrl-C mid-run saves last.ckpt and exits 130; resume=true ends with the uninterrupted run's encoder."""
    from safetensors.torch import load_file

    run = tmp_path / "run"
    stop = ["+callbacks.stop._target_=pace.InterruptAt", "+callbacks.stop.step=5"]
    assert main(pretrain_args(demo_root, run, *stop)) == 130
    assert (run / "checkpoints" / "last.ckpt").is_file() and not (run / "encoder").exists()
    assert main(pretrain_args(demo_root, run, "resume=true")) == 0
    resumed = load_file(run / "encoder" / "model.safetensors")
    reference = load_file(pretrained / "encoder" / "model.safetensors")
    assert all(torch.equal(resumed[k], reference[k]) for k in reference)


def test_pretrain_over_a_previous_run_is_refused(demo_root: Path, tmp_path: Path, capsys) -> None:
    """Issue 20.2 for pretrain: without resume=true, a run directory holding a run is refused in one line before
    anything is built or written, as in flashvid train."""
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt").write_bytes(b"an earlier run's checkpoint")
    assert main(pretrain_args(demo_root, run)) == 2
    err = capsys.readouterr().err
    assert f"the run directory {run} holds a previous run (checkpoints/)" in err and "overwrite=true" in err
    assert "Traceback" not in err
    assert (run / "checkpoints" / "last.ckpt").read_bytes() == b"an earlier run's checkpoint"
    assert not (run / "config.yaml").exists()
