"""`flashvid export` (hf, onnx, torch_export) and `flashvid embed`, on real encoded videos and real models.

The hf export is loaded by transformers' own pipeline in a child process where flashvid cannot be imported, and
its top-1 is compared with `flashvid predict` on the same files. ONNX graphs run in onnxruntime against PyTorch.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

# A VideoMAE small enough for a CPU test: 4 frames of 56 px in 28 px patches and 2-frame tubelets (8 tokens)
TINY_VIDEOMAE = {"num_frames": 4, "image_size": 56, "patch_size": 28, "tubelet_size": 2, "hidden_size": 32,
                     "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64}


def _hydra(tmp: Path) -> list[str]:
    return ["hydra/job_logging=none", "hydra/hydra_logging=none", f"hydra.run.dir={tmp}"]


def _train_checkpoint(model, demo_root: Path, path: Path) -> Path:
    """Two optimiser steps on the demo videos through Lightning, then a real checkpoint file."""
    from flashvid import Trainer, VideoClassificationData

    dm = VideoClassificationData.from_folders(demo_root / "train", batch_size=4, num_workers=0,
                                              augmentation={"hflip": 0.0})
    trainer = Trainer(max_steps=2, accelerator="cpu", logger=False, enable_progress_bar=False,
                      enable_model_summary=False, enable_checkpointing=False, limit_val_batches=0)
    trainer.fit(model, dm)
    trainer.save_checkpoint(path)
    return path


@pytest.fixture(scope="module")
def videomae_ckpt(demo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny VideoMAE trained on the demo videos: 64x80 px, 16 frames at 15 fps. With sampling_rate=8 (at 30
    fps: a stride of 4 source frames) one clip spans the whole file, which is when flashvid's centre clip and
    transformers' evenly spread frames are the same frames (frames 0, 4, 8, 12); the short side (64) equals the
    resize (56 * 256 / 224), so both crop the same pixels."""
    from flashvid import VideoClassifier

    model = VideoClassifier("videomae_small", labels=sorted(p.name for p in (demo_root / "train").iterdir()),
                            backbone_kwargs=TINY_VIDEOMAE, data={"sampling_rate": 8}, learning_rate=1e-2)
    return _train_checkpoint(model, demo_root, tmp_path_factory.mktemp("vmae") / "videomae.ckpt")


PIPELINE = """
import json, sys
sys.modules["flashvid"] = None  # installed editable in this venv: make sure the pipeline does not use it
import transformers
pipe = transformers.pipeline("video-classification", model=sys.argv[1])
print(json.dumps([pipe(f, top_k=3) for f in sys.argv[2:]]))
"""


def test_hf_export_loads_in_transformers_pipeline_and_matches_predict(videomae_ckpt: Path, demo_root: Path,
                                                                       tmp_path: Path) -> None:
    """`flashvid export format=hf` writes a directory transformers' pipeline loads with no flashvid importable
    (clean environment, no PYTHONPATH); on real encoded files its top-1 equals `flashvid predict`'s."""
    from flashvid.cli import main

    out = tmp_path / "hf"
    assert main(["export", f"ckpt_path={videomae_ckpt}", "format=hf", f"out={out}", *_hydra(tmp_path / "r1")]) == 0
    for name in ("config.json", "model.safetensors", "preprocessor_config.json", "video_preprocessor_config.json",
                 "README.md"):
        assert (out / name).is_file(), name
    config = json.loads((out / "config.json").read_text())
    labels = sorted(p.name for p in (demo_root / "train").iterdir())
    assert config["model_type"] == "videomae" and config["id2label"] == {str(i): n for i, n in enumerate(labels)}
    processor = json.loads((out / "video_preprocessor_config.json").read_text())
    assert processor["crop_size"] == {"height": 56, "width": 56} and processor["size"] == {"shortest_edge": 64}
    assert processor["image_mean"] == pytest.approx([0.485, 0.456, 0.406])
    card = (out / "README.md").read_text()
    assert "pipeline_tag: video-classification" in card and all(f"`{n}`" in card for n in labels)

    files = sorted(str(p) for p in (demo_root / "test").rglob("*") if p.is_file())
    preds = tmp_path / "preds.json"
    assert main(["predict", f"ckpt_path={videomae_ckpt}", f"inputs=[{','.join(files)}]", f"output={preds}",
                 *_hydra(tmp_path / "r2")]) == 0
    ours = {r["path"]: r for r in json.loads(preds.read_text())}
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", PIPELINE, str(out), *files], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    theirs = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(theirs) == len(files) == 8
    for f, top in zip(files, theirs, strict=True):
        assert top[0]["label"] == ours[f]["label"], (f, top, ours[f]["top_k"])
        assert top[0]["score"] == pytest.approx(ours[f]["score"], abs=1e-4)  # the same frames and pixels


def test_hf_export_refuses_a_non_transformers_backbone(tmp_path: Path) -> None:
    from flashvid import VideoClassifier
    from flashvid.export import ExportError, export

    model = VideoClassifier("tiny_r2plus1d", num_classes=3)
    with pytest.raises(ExportError, match="format=hf needs a transformers backbone.*tiny_r2plus1d.*format=onnx"):
        export(model, tmp_path / "hf", "hf")


# x3d_xs with a fixed batch: its export took 15 s of CPU that way, 22 s with a dynamic batch (the default)
@pytest.mark.parametrize(("name", "dynamic"), [("x3d_xs", False), ("r2plus1d_18", True), ("videomae_small", True)])
def test_onnx_export_matches_pytorch(name: str, dynamic: bool, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    """The dynamo exporter's graph, run by onnxruntime, gives PyTorch's logits within 1e-3 (random weights; each
    backbone's smallest test input: 4 frames of 32-64 px); a dynamic batch is run at another size than traced."""
    import onnxruntime as ort

    from flashvid import VideoClassifier
    from flashvid.export import export
    from flashvid.models import get_backbone_spec

    spec = get_backbone_spec(name)
    frames, size = spec.test_input
    model = VideoClassifier(name, num_classes=5, backbone_kwargs=spec.test_kwargs or None,
                            data={"num_frames": frames, "crop_size": size})
    report = export(model, tmp_path, "onnx", dynamic_batch=dynamic)
    assert "max abs logit difference" in capsys.readouterr().out
    assert report["max_abs_diff"] < 1e-3
    config = json.loads((tmp_path / "flashvid_config.json").read_text())
    assert config["data"]["num_frames"] == frames and config["data"]["crop_size"] == size
    # independent of export()'s own check: uint8 frames normalised as flashvid does
    batch = 3 if dynamic else 2
    video = torch.randint(0, 256, (batch, frames, 3, size, size), dtype=torch.uint8)
    with torch.inference_mode():
        x = model.normalize(video)
        want = model(x).numpy()
    got = ort.InferenceSession(str(tmp_path / "model.onnx")).run(["logits"], {"video": x.numpy()})[0]
    assert got.shape == (batch, 5) and np.abs(got - want).max() < 1e-3


def test_torch_export_program_and_a_clear_error_when_a_graph_cannot_be_traced(tmp_path: Path) -> None:
    """model.pt2 loads with torch.export.load alone and matches eager; a clip size the backbone cannot take
    (VideoMAE's position embeddings fix the token count) is an ExportError naming the backbone and the cause."""
    from flashvid import VideoClassifier
    from flashvid.export import ExportError, export

    model = VideoClassifier("tiny_r2plus1d", num_classes=3, data={"num_frames": 4, "crop_size": 32})
    report = export(model, tmp_path / "pt2", "torch_export")
    program = torch.export.load(str(tmp_path / "pt2" / "model.pt2")).module()
    x = torch.randn(3, 4, 3, 32, 32)
    with torch.inference_mode():
        torch.testing.assert_close(program(x), model(x), atol=1e-4, rtol=1e-4)
    assert report["max_abs_diff"] < 1e-4

    vmae = VideoClassifier("videomae_small", num_classes=3, backbone_kwargs={"num_frames": 4, "image_size": 32})
    with pytest.raises(ExportError, match="'videomae_small' cannot be exported to ONNX"):
        export(vmae, tmp_path / "bad", "onnx", crop_size=48)


def _saved_checkpoint(path: Path, labels: list[str]) -> Path:
    """A checkpoint file of an untrained tiny model (what load_classifier reads: weights and hyperparameters)."""
    import lightning

    from flashvid import VideoClassifier

    model = VideoClassifier("tiny_r2plus1d", labels=labels, data={"num_frames": 4, "crop_size": 32})
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams),
                "pytorch-lightning_version": lightning.__version__}, path)
    return path


def test_export_never_merges_into_a_used_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A second export into the same out= is refused in one line, leaving the first intact (A's weights beside
    B's class names once loaded as one model); overwrite=true replaces the whole set; out= a file: one line."""
    from flashvid.cli import main
    from flashvid.export import ExportError, export, load_exported

    a = _saved_checkpoint(tmp_path / "a.ckpt", ["a1", "a2"])
    b = _saved_checkpoint(tmp_path / "b.ckpt", ["b1", "b2", "b3"])
    out = tmp_path / "out"
    run = [*_hydra(tmp_path / "runs"), f"out={out}"]
    assert main(["export", f"ckpt_path={a}", "format=torch_export", *run]) == 0
    first = sorted(p.name for p in out.iterdir())
    assert "model.pt2" in first
    capsys.readouterr()

    assert main(["export", f"ckpt_path={b}", "format=safetensors", *run]) == 2
    err = capsys.readouterr().err
    assert f"out={out} is not empty" in err and "overwrite=true" in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in out.iterdir()) == first
    assert json.loads((out / "flashvid_config.json").read_text())["labels"] == ["a1", "a2"]

    assert main(["export", f"ckpt_path={b}", "format=safetensors", "overwrite=true", *run]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["export_report.json", "flashvid_config.json", "model.safetensors"]
    assert load_exported(out).labels == ["b1", "b2", "b3"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left behind

    capsys.readouterr()
    assert main(["export", f"ckpt_path={b}", f"out={a}", *_hydra(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert f"out={a} is a file" in err and "Traceback" not in err
    with pytest.raises(ExportError, match="is not empty"):
        export(load_exported(out), out)


def test_load_exported_reads_an_hf_export(tmp_path: Path) -> None:
    """load_exported on a format=hf directory (the transformers model's weights, not flashvid's) rebuilds the
    same model instead of failing on missing/unexpected keys; a graph export names what loads it."""
    from flashvid import VideoClassifier
    from flashvid.export import export, load_exported

    torch.manual_seed(0)
    model = VideoClassifier("videomae_small", labels=["a", "b", "c"], backbone_kwargs=TINY_VIDEOMAE).eval()
    export(model, tmp_path / "hf", "hf")
    again = load_exported(tmp_path / "hf")
    video = torch.randint(0, 255, (2, 4, 3, 56, 56), dtype=torch.uint8)
    assert again.labels == ["a", "b", "c"]
    torch.testing.assert_close(again(video), model(video))

    tiny = VideoClassifier("tiny_r2plus1d", num_classes=2, data={"num_frames": 4, "crop_size": 32})
    export(tiny, tmp_path / "pt2", "torch_export")
    with pytest.raises(FileNotFoundError, match="format=torch_export export.*torch.export.load"):
        load_exported(tmp_path / "pt2")


def test_embed_writes_pooled_features_and_index(demo_root: Path, tmp_path: Path) -> None:
    """`flashvid embed folder=...`: one row per video of the head's input; the head applied to a row gives the
    video's logits (so the rows are the pooled features), and index.csv names each row's file and class."""
    from flashvid import VideoClassifier
    from flashvid.cli import main

    model = VideoClassifier("tiny_r2plus1d", labels=sorted(p.name for p in (demo_root / "train").iterdir()),
                            data={"num_frames": 4, "crop_size": 32, "resize_size": 36})
    ckpt = _train_checkpoint(model, demo_root, tmp_path / "tiny.ckpt")
    out = tmp_path / "emb"
    assert main(["embed", f"ckpt_path={ckpt}", f"folder={demo_root / 'val'}", f"out={out}",
                 *_hydra(tmp_path / "r")]) == 0
    features = np.load(out / "features.npy")
    rows = list(csv.DictReader(open(out / "index.csv")))
    files = sorted(p for p in (demo_root / "val").rglob("*") if p.is_file())
    assert features.shape == (len(files), model.backbone.head.in_features) and len(rows) == len(files)
    assert [r["label"] for r in rows] == [Path(r["path"]).parent.name for r in rows]
    from flashvid.cli import load_classifier

    loaded = load_classifier(str(ckpt))
    preds = {p["path"]: p for p in loaded.predict([r["path"] for r in rows], top_k=1)}
    with torch.inference_mode():
        probs = loaded.backbone.head(torch.from_numpy(features)).softmax(-1)
    for r, p in zip(rows, probs, strict=True):
        assert loaded.labels[int(p.argmax())] == preds[r["path"]]["label"]
        assert float(p.max()) == pytest.approx(preds[r["path"]]["score"], abs=1e-5)

    assert main(["embed", f"ckpt_path={ckpt}", f"out={out}", *_hydra(tmp_path / "r2")]) == 2  # no source given


def test_model_card_names_the_runs_data_and_test_metrics(tmp_path: Path) -> None:
    """The hf model card reads what `flashvid train` left beside the checkpoint (metrics.json, config.yaml)."""
    from flashvid import VideoClassifier
    from flashvid.export import run_facts
    from flashvid.export.hf import model_card

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps({"epochs": 3, "best_val_acc": 0.75,
                                                  "test": {"test/acc": 0.625, "test/mean_class_acc": 0.5}}))
    (run / "config.yaml").write_text("data:\n  train_folder: videos/train\n  test_folder: videos/test\n"
                                     "  val_folder: null\n  batch_size: 8\n")
    facts = run_facts(run / "checkpoints" / "best.ckpt")
    assert facts["data"] == {"train_folder": "videos/train", "test_folder": "videos/test"}
    model = VideoClassifier("videomae_small", labels=["jump", "run"], backbone_kwargs=TINY_VIDEOMAE)
    card = model_card(model, facts)
    assert "- test/acc: 0.6250" in card and "- best validation score: 0.7500" in card
    assert "train_folder: `videos/train`" in card and "`jump`, `run`" in card and "4 frames per clip" in card
    assert "No evaluation was recorded" in model_card(model, run_facts(tmp_path / "elsewhere" / "x" / "y.ckpt"))
