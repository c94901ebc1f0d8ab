"""Loading never runs code: weights-only checkpoints, refused pickles, no trust_remote_code, safetensors export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from badvideos import build_run, make_clean_dataset


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A checkpoint written by a real run whose hyperparameters arrive as OmegaConf containers (as from Hydra)."""
    from omegaconf import OmegaConf

    tmp = tmp_path_factory.mktemp("safe")
    data = make_clean_dataset(tmp / "data", train_per_class=2, val_per_class=1)
    trainer, model, dm = build_run(data, tmp / "run", max_epochs=1, every_n_steps=None)
    model.hparams["backbone_kwargs"] = OmegaConf.create({"width": 16})
    model.hparams["data"] = OmegaConf.create({"num_frames": 4, "crop_size": 32, "resize_size": 36})
    trainer.fit(model, dm)
    return tmp / "run" / "checkpoints" / "last.ckpt", model, data


def test_flashvid_checkpoints_load_with_weights_only(trained) -> None:
    """What flashvid saves (callback states, RNG states, loader position, OmegaConf hparams) loads with
    torch.load(weights_only=True), and VideoClassifier.load_from_checkpoint(weights_only=True) works on it."""
    from flashvid import VideoClassifier

    path, model, _ = trained
    ckpt = torch.load(path, weights_only=True)
    assert ckpt["hyper_parameters"]["backbone_kwargs"] == {"width": 16}
    assert {"FailureReport", "ExactResume"} <= {k.split("{")[0] for k in ckpt["callbacks"]}
    loaded = VideoClassifier.load_from_checkpoint(path, weights_only=True)
    assert loaded.labels == model.labels
    for k, v in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[k], v)


class _Payload:
    """Unpickling this runs code (it writes a marker file): what a malicious checkpoint does."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


def test_pickle_carrying_code_is_refused(trained, tmp_path) -> None:
    """A checkpoint whose pickle would execute code is refused with a clear message, by flashvid's loader and
    by a resume through the trainer, and the code never runs."""
    from flashvid.checkpoint import UnsafeCheckpointError, load_checkpoint

    path, _, data = trained
    marker = tmp_path / "marker"
    evil = tmp_path / "evil.ckpt"
    ckpt = torch.load(path, weights_only=True)
    ckpt["hyper_parameters"]["payload"] = _Payload(marker)
    torch.save(ckpt, evil)
    with pytest.raises(UnsafeCheckpointError, match="refusing to load .*could run code"):
        load_checkpoint(evil)
    trainer, model, dm = build_run(data, tmp_path / "run", max_epochs=2, every_n_steps=None)
    with pytest.raises(UnsafeCheckpointError):
        trainer.fit(model, dm, ckpt_path=str(evil))
    assert not marker.exists()


def test_transformers_checkpoint_with_remote_code_never_runs_it(tmp_path) -> None:
    """A transformers checkpoint that ships its own modelling code (auto_map) is refused; the code is not
    imported (flashvid passes trust_remote_code=False everywhere)."""
    from flashvid import VideoClassifier

    marker = tmp_path / "marker"
    ckpt = tmp_path / "evil-model"
    ckpt.mkdir()
    (ckpt / "config.json").write_text(json.dumps({
        "model_type": "evil_video", "architectures": ["EvilModel"],
        "auto_map": {"AutoConfig": "modeling_evil.EvilConfig", "AutoModel": "modeling_evil.EvilModel"}}))
    (ckpt / "modeling_evil.py").write_text(f"open({str(marker)!r}, 'w').write('pwned')\n")
    with pytest.raises((ValueError, OSError)):
        VideoClassifier(backbone=str(ckpt), num_classes=2)
    assert not marker.exists()


def test_export_to_safetensors_and_back(trained, tmp_path) -> None:
    """export_model writes model.safetensors (tensors only) + a JSON config with labels and clip settings;
    load_exported rebuilds a model giving the same outputs."""
    from safetensors import safe_open

    from flashvid.export import CONFIG, WEIGHTS, export_model, load_exported

    _, model, _ = trained
    out = export_model(model, tmp_path / "export")
    config = json.loads((out / CONFIG).read_text())
    assert config["labels"] == model.labels and config["data"]["num_frames"] == 4
    with safe_open(str(out / WEIGHTS), framework="pt") as f:
        assert set(f.keys()) == set(model.state_dict())
    again = load_exported(out)
    video = torch.randint(0, 255, (2, 4, 3, 32, 32), dtype=torch.uint8)
    model.eval()
    torch.testing.assert_close(again(video), model(video))
