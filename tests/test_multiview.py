"""Multi-view evaluation that helps: views cover the whole video in time and the long side in space (left/centre/
right on landscape, top/middle/bottom on portrait), at the scale of the single view, and their probabilities are
averaged.

The model here is a fixed motion detector registered as a backbone (no training: a trained model's accuracy would
test the training as much as the views): it reports the direction of a bright square when its view sees the
square move, and nothing (uniform probabilities) otherwise. On videos whose action happens at a random time and
on a random side, one centre view sees nothing, and every view together sees everything.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from flashvid import Trainer, VideoClassificationData, VideoClassifier
from flashvid.data import DataConfig, VideoSample
from flashvid.data.demo import write_video
from flashvid.models import VideoBackbone, list_backbones, register_backbone

LABELS = ["left", "right"]
ORACLE = "test_motion_oracle"


class MotionOracle(nn.Module):
    """Logits (left, right) from the horizontal travel of the bright pixels' centroid, zeros when none move."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Identity()

    def forward(self, video: torch.Tensor) -> torch.Tensor:  # (B, T, C, H, W), normalised with mean=std=0.5
        bright = video[:, :, 0] > 0.8
        count = bright.flatten(2).sum(-1)  # (B, T)
        xs = torch.arange(video.shape[-1], dtype=video.dtype)
        cx = (bright * xs).flatten(2).sum(-1) / count.clamp(min=1)
        out = torch.zeros(len(video), 2)
        for i in range(len(video)):
            seen = (count[i] >= 40).nonzero().flatten()  # the square (100 px) mostly in view
            if len(seen) >= 2:
                dx = float(cx[i, seen[-1]] - cx[i, seen[0]])
                out[i] = torch.tensor([-dx, dx])
        return self.head(out)


if ORACLE not in list_backbones():
    @register_backbone(ORACLE, family="flashvid", layout="BTCHW", num_frames=8, sampling_rate=2, crop_size=64,
                       mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    def _oracle(spec, num_classes, pretrained=False, **kwargs) -> VideoBackbone:
        model = MotionOracle()
        return VideoBackbone(model, spec, model.head, [model.head])


def action_video(path: Path, rng: np.random.Generator, portrait: bool, side: int, direction: int) -> None:
    """90 frames at 30 fps, 64x112 (or 112x64); a 10x10 white square moves 1 px/frame for 12 frames starting at
    a random time, on one side of the long axis (``side`` 0 or 1), else only dark noise."""
    h, w = (112, 64) if portrait else (64, 112)
    frames = rng.integers(0, 100, (90, h, w, 3), dtype=np.uint8)
    start = int(rng.integers(10, 64))
    along = 2 if side == 0 else 100  # position on the long axis, outside the centre view
    across = int(rng.integers(24, 30))  # position on the short axis, inside every view
    for k in range(12):
        offset = 1 + (k if direction > 0 else 11 - k)
        y, x = (along, across + offset) if portrait else (across, along + offset - 1)
        if portrait:
            frames[start + k, y : y + 10, x : x + 10] = 255
        else:
            frames[start + k, y : y + 10, min(x, w - 10) : min(x, w - 10) + 10] = 255
    write_video(path, frames, fps=30)


@pytest.fixture(scope="module")
def action_set(tmp_path_factory: pytest.TempPathFactory) -> list[VideoSample]:
    root = tmp_path_factory.mktemp("multiview")
    rng = np.random.default_rng(0)
    samples = []
    for i in range(16):
        direction = 1 if i % 2 else -1
        path = root / f"v{i:02d}.mp4"
        action_video(path, rng, portrait=i % 4 >= 2, side=int(rng.integers(0, 2)), direction=direction)
        samples.append(VideoSample(str(path), LABELS.index("right" if direction > 0 else "left")))
    return samples


def accuracy(samples: list[VideoSample], num_clips: int, num_crops: int, tmp_path: Path) -> float:
    data = VideoClassificationData(test=samples, labels=LABELS, batch_size=4, num_workers=0, num_clips=num_clips,
                                   num_crops=num_crops)
    model = VideoClassifier(ORACLE, labels=LABELS)
    trainer = Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                      default_root_dir=str(tmp_path))
    return float(trainer.test(model, datamodule=data, verbose=False)[0]["test/acc"])


def test_multi_view_beats_one_centre_view_when_the_action_is_off_centre(action_set, tmp_path: Path):
    one = accuracy(action_set, 1, 1, tmp_path)
    many = accuracy(action_set, 5, 3, tmp_path)
    assert many == 1.0  # some view saw every action, and the views that saw nothing did not outvote it
    assert one <= 0.6  # the centre view sees none of them: chance


def test_the_middle_crop_is_the_single_view():
    """3-crop views are taken at the single view's scale (short side resize_size, not crop_size): the middle
    crop equals the centre crop, so multi-view only adds views."""
    torch.manual_seed(0)
    cfg = DataConfig(crop_size=32, resize_size=40)
    for h, w in ((36, 64), (64, 36), (48, 48)):
        video = torch.randint(0, 256, (2, 3, h, w), dtype=torch.uint8)
        three = cfg.eval_transform(3)(video)
        assert three.shape == (3, 2, 3, 32, 32)
        assert torch.equal(three[1], cfg.eval_transform(1)(video))
        if h != w:  # the outer crops sit at the ends of the long side
            assert not torch.equal(three[0], three[2])


def test_views_of_an_encoded_portrait_video_cover_its_long_side_and_its_whole_length(tmp_path: Path):
    """A real portrait file (64x112, 60 frames): green says the band (top 0, middle 128, bottom 255), red the
    frame (4 levels per frame). The 3 crops land top/middle/bottom, and the 5 clips start at the centres of 5
    equal segments, MMAction2's test sampling (``(arange(n) + 0.5) * (frames - span + 1) / n``, truncated), within
    a frame plus the colour conversion's error (about half a frame): not ``[0 .. end]``, nor PySlowFast's
    ``delta * i / n`` (0, 10.4, ... 41.6 here), which never reaches the last fifth of a video."""
    from flashvid.data import ClipSampling, VideoClipDataset

    frames = np.zeros((60, 112, 64, 3), dtype=np.uint8)
    frames[..., 0] = (10 + 4 * np.arange(60))[:, None, None]
    for band, level in enumerate((0, 128, 255)):
        frames[:, band * 112 // 3 : (band + 1) * 112 // 3, :, 1] = level
    write_video(tmp_path / "portrait.mp4", frames, fps=25)
    sampling = ClipSampling(num_frames=4, sampling_rate=2, target_fps=None)
    views = VideoClipDataset([VideoSample(str(tmp_path / "portrait.mp4"), 0)], sampling,
                             DataConfig(crop_size=32, resize_size=40).eval_transform(3), "uniform", num_clips=5)[0]
    views = views["video"].view(5, 3, 4, 3, 32, 32).float()  # clips x crops x (T, C, H, W)
    centre_green = views[:, :, :, 1, 16, 16]
    assert torch.allclose(centre_green, torch.tensor([0.0, 128.0, 255.0]).view(1, 3, 1).expand_as(centre_green),
                          atol=12)
    first_frame = (views[:, 1, 0, 0].mean((-1, -2)) - 10) / 4  # each clip's first frame, read from its red
    span = sampling.span(25.0)
    mmaction = (np.arange(5) + 0.5) * (60 - span + 1) / 5
    assert np.allclose(first_frame.numpy(), np.floor(mmaction), atol=1.6), (first_frame, mmaction)


@pytest.mark.parametrize("how", ["prob", "logit"])
def test_view_average_combines_the_views_probabilities_or_logits(action_set, how: str):
    """``view_average``: the mean of the views' softmax (PySlowFast, MMAction2's default) or the softmax of their
    mean logits (MMAction2's ``score``), checked against the model's own per-view logits on real files."""
    from flashvid.inference import PredictOptions, Predictor, clip_loader

    model = VideoClassifier(ORACLE, labels=LABELS).eval()
    options = PredictOptions(num_clips=5, num_crops=3, device="cpu", view_average=how)
    [batch] = list(clip_loader(model, action_set[:4], PredictOptions(num_clips=5, num_crops=3, batch_size=4)))
    with torch.inference_mode():
        logits = model(batch["video"].flatten(0, 1)).view(4, 15, 2)  # each view on its own
    expected = logits.softmax(-1).mean(1) if how == "prob" else logits.mean(1).softmax(-1)
    results = Predictor(model, options).predict([s.path for s in action_set[:4]])
    scores = torch.tensor([[{t["label"]: t["score"] for t in r["top_k"]}[c] for c in LABELS] for r in results])
    assert torch.allclose(scores, expected, atol=1e-5)
    assert model.view_average == "prob"  # the predictor's setting does not stay on the model


def test_view_average_for_testing_and_a_bad_value(action_set, tmp_path: Path):
    data = VideoClassificationData(test=action_set, labels=LABELS, batch_size=4, num_workers=0, num_clips=5,
                                   num_crops=3, view_average="logit")
    model = VideoClassifier(ORACLE, labels=LABELS)
    trainer = Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                      default_root_dir=str(tmp_path))
    assert trainer.test(model, datamodule=data, verbose=False)[0]["test/acc"] == 1.0
    assert model.view_average == "logit"
    with pytest.raises(ValueError, match=r"data\.view_average.*prob, logit.*'mean'"):
        VideoClassificationData(test=action_set, labels=LABELS, view_average="mean")
