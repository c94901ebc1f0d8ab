"""Clip sampling arithmetic and the transforms: CPU per-sample (uint8 in, uint8 out) and GPU per-batch (uint8 in,
normalised float of the crop size out). Pixel values encode coordinates so crops are checked by content."""

from __future__ import annotations

import random

import pytest
import torch
from torchvision.transforms.v2 import functional as TF

from flashvid.data import BatchAugmentation, ClipSampling, MultiCrop, RandomShortSideCrop, ShortSideCenterCrop
from flashvid.data.transforms import resize_short_side

MEAN, STD = (0.45, 0.4, 0.35), (0.225, 0.25, 0.2)


def coords(t: int, h: int, w: int) -> torch.Tensor:
    """uint8 ``(T, 3, H, W)``: channel 0 is x, channel 1 is y, channel 2 is the frame number."""
    y, x = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    frame = torch.stack([x, y, torch.zeros_like(x)]).to(torch.uint8)
    video = frame.expand(t, 3, h, w).clone()
    video[:, 2] = torch.arange(t, dtype=torch.uint8).view(t, 1, 1)
    return video


# ---------------------------------------------------------------------------------------------------- sampling
@pytest.mark.parametrize("fps", [15.0, 25.0, 30000 / 1001, 60.0])
def test_random_clips_stay_inside_the_video(fps: float):
    s = ClipSampling(num_frames=16, sampling_rate=4, target_fps=30.0)
    total = 300
    rng = random.Random(0)
    starts = [s.clips(total, fps, "random", rng=rng)[0] for _ in range(200)]
    for idx in starts:
        assert len(idx) == 16 and 0 <= idx[0] and idx[-1] < total
        assert idx == sorted(idx)
    spread = {idx[0] for idx in starts}
    assert min(spread) < total * 0.1 and max(spread) > (total - s.span(fps)) * 0.9  # covers the whole range


def test_center_and_uniform_clips():
    s = ClipSampling(num_frames=8, sampling_rate=2, target_fps=None)
    total = 100
    span = s.span(30.0)
    (center,) = s.clips(total, 30.0, "center")
    assert abs(center[0] - (total - (center[0] + span))) <= 1  # as much video before the clip as after it
    uniform = s.clips(total, 30.0, "uniform", num_clips=5)
    # the centres of 5 equal segments of the room (MMAction2's test-mode sampling), not its two ends
    room = total - span
    assert len(uniform) == 5 and uniform[0][0] == int(room / 10) and uniform[-1][0] == int(room * 9 / 10)
    firsts = [c[0] for c in uniform]
    gaps = [b - a for a, b in zip(firsts, firsts[1:])]
    assert firsts == sorted(firsts) and max(gaps) - min(gaps) <= 1
    assert s.clips(total, 30.0, "uniform", num_clips=1) == [center]


def test_clips_longer_than_the_video_repeat_the_last_frame():
    s = ClipSampling(num_frames=8, sampling_rate=3, target_fps=None)
    for mode in ("random", "center", "uniform"):
        for idx in s.clips(10, 30.0, mode, num_clips=2, rng=random.Random(1)):
            assert idx == [0, 3, 6, 9, 9, 9, 9, 9]


def test_stride_follows_the_video_fps():
    """``sampling_rate`` is in frames at ``target_fps``; ``clip_duration`` in seconds; both scale with fps."""
    by_rate = ClipSampling(num_frames=16, sampling_rate=4, target_fps=30.0)
    by_time = ClipSampling(num_frames=16, clip_duration=2.0)
    for fps in (15.0, 29.97, 50.0):
        assert by_rate.stride(fps) / fps == pytest.approx(4 / 30.0)
        assert by_time.span(fps) / fps == pytest.approx(2.0)
    assert ClipSampling(num_frames=4, sampling_rate=5, target_fps=None).stride(12.5) == 5


@pytest.mark.parametrize("kwargs", [dict(num_frames=0), dict(sampling_rate=0), dict(clip_duration=-1.0)])
def test_invalid_sampling_is_refused(kwargs):
    with pytest.raises(ValueError):
        ClipSampling(**kwargs)
    with pytest.raises(ValueError, match="clip mode"):
        ClipSampling().clips(10, 30.0, "middle")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------- CPU transforms
@pytest.mark.parametrize("hw", [(48, 80), (80, 48), (64, 64)])
def test_resize_short_side_keeps_aspect_and_dtype(hw: tuple[int, int]):
    video = coords(3, *hw)
    out = resize_short_side(video, 32)
    assert out.dtype == torch.uint8 and min(out.shape[-2:]) == 32
    assert out.shape[-1] / out.shape[-2] == pytest.approx(hw[1] / hw[0], abs=0.05)
    assert resize_short_side(out, 32) is out  # already right: no copy


def test_center_crop_takes_the_middle():
    video = coords(4, 40, 60)
    out = ShortSideCenterCrop(crop_size=32, resize_size=40)(video)
    assert out.shape == (4, 3, 32, 32) and out.dtype == torch.uint8
    assert out[0, 0, 0, 0] == (60 - 32) // 2 and out[0, 1, 0, 0] == (40 - 32) // 2
    assert out[:, 2, 0, 0].tolist() == [0, 1, 2, 3]  # frames untouched and in order


def test_random_crop_is_random_and_inside_the_frame():
    crop = RandomShortSideCrop(crop_size=32, min_size=40, max_size=40)
    video = coords(2, 40, 100)
    lefts = set()
    random.seed(0)
    for _ in range(30):
        out = crop(video)
        assert out.shape == (2, 3, 32, 32) and out.dtype == torch.uint8
        left, top = int(out[0, 0, 0, 0]), int(out[0, 1, 0, 0])
        assert 0 <= left <= 100 - 32 and 0 <= top <= 40 - 32
        assert torch.equal(out[0, :2], out[1, :2])  # one crop for the whole clip
        lefts.add(left)
    assert len(lefts) > 5


def test_crops_match_resizing_the_whole_frame_first():
    """The transforms crop in source pixels and resample only the kept square: the result must be the picture
    that resizing the short side first and cropping gives."""
    torch.manual_seed(0)
    # sizes where both routes put the crop on the same source pixels (scale 1/2, even offsets)
    smooth = TF.resize(torch.randint(0, 256, (2, 3, 9, 12), dtype=torch.uint8), [128, 192], antialias=True)
    out = ShortSideCenterCrop(crop_size=48, resize_size=64)(smooth)
    ref = resize_short_side(smooth, 64)
    top, left = (ref.shape[-2] - 48) // 2, (ref.shape[-1] - 48) // 2
    ref = ref[..., top : top + 48, left : left + 48]
    assert out.shape == ref.shape == (2, 3, 48, 48)
    diff = (out.float() - ref.float()).abs()
    assert diff[..., 2:-2, 2:-2].max() <= 1  # rounding only; the border rows see the filter's edge handling
    assert diff.mean() < 1.0


def test_random_crop_scale_follows_the_short_side_jitter():
    """Output pixels per source pixel must be ``short_side / source short side`` for a short side in
    ``[min_size, max_size]``: read it off a coordinate ramp, on both axes (square pixels kept)."""
    crop = RandomShortSideCrop(crop_size=48, min_size=60, max_size=90)
    video = coords(1, 120, 160)
    random.seed(0)
    steps = []
    for _ in range(20):
        out = crop(video)[0].float()
        step_x = (out[0, 24, -2] - out[0, 24, 1]).item() / 45  # floats: pytest>=9.2's approx rejects 0-d tensors
        step_y = (out[1, -2, 24] - out[1, 1, 24]).item() / 45
        assert step_x == pytest.approx(step_y, abs=0.03)
        steps.append(step_x)
    assert 120 / 90 - 0.03 <= min(steps) and max(steps) <= 120 / 60 + 0.03
    assert max(steps) - min(steps) > 0.2  # the short side really is drawn at random


def test_small_videos_are_padded_up_to_the_crop():
    out = RandomShortSideCrop(crop_size=48, min_size=32)(coords(2, 32, 32))
    assert out.shape == (2, 3, 48, 48)


@pytest.mark.parametrize("hw", [(40, 90), (90, 40)])
def test_multicrop_spreads_crops_along_the_long_side(hw: tuple[int, int]):
    video = coords(2, *hw)
    out = MultiCrop(crop_size=40, num_crops=3)(video)
    assert out.shape == (3, 2, 3, 40, 40) and out.dtype == torch.uint8
    long_axis = 0 if hw[1] > hw[0] else 1  # channel 0 holds x, channel 1 holds y
    firsts = [int(out[k, 0, long_axis, 0, 0]) for k in range(3)]
    room = max(hw) - 40
    assert firsts == [0, round(room / 2), room]  # left/top, middle, right/bottom
    assert int(out[0, 0, 1 - long_axis, 0, 0]) == 0  # the short side is taken whole


# ---------------------------------------------------------------------------------------------------- GPU batch aug
def _expected_normalised(video: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(MEAN).view(3, 1, 1)
    std = torch.tensor(STD).view(3, 1, 1)
    return (video.float() / 255 - mean) / std


def test_eval_batch_augmentation_only_normalises():
    aug = BatchAugmentation(MEAN, STD, crop_size=16, train=False)
    batch = torch.randint(0, 256, (2, 4, 3, 16, 16), dtype=torch.uint8)
    out = aug(batch)
    assert out.dtype == torch.float32 and out.shape == batch.shape
    torch.testing.assert_close(out, _expected_normalised(batch))
    views = torch.randint(0, 256, (2, 3, 4, 3, 16, 16), dtype=torch.uint8)  # (B, V, T, C, H, W)
    torch.testing.assert_close(aug(views), _expected_normalised(views))
    floats = torch.rand(2, 4, 3, 16, 16)
    assert aug(floats) is floats  # a user's own float pipeline passes through


@pytest.mark.parametrize("train", [False, True])
def test_batch_augmentation_returns_contiguous_floats_from_channels_last_batches(train: bool):
    """Loader batches keep the decoders' channels-last storage; models must still get a contiguous tensor."""
    stored = torch.randint(0, 256, (2, 4, 16, 16, 3), dtype=torch.uint8)
    batch = stored.permute(0, 1, 4, 2, 3)  # (B, T, C, H, W) view of (B, T, H, W, C) memory
    out = BatchAugmentation(MEAN, STD, crop_size=16, train=train, scale=(1.0, 1.0), hflip=0.0)(batch)
    assert out.is_contiguous() and out.shape == (2, 4, 3, 16, 16)
    if not train:
        torch.testing.assert_close(out, _expected_normalised(batch))


BACKENDS = ["fused", "kornia"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("scale", [(0.25, 1.0), (1.0, 1.0)])
def test_train_batch_augmentation_crops_to_the_crop_size(scale, backend):
    """Whatever the scale range, training output is the model's crop size (input is the larger short side)."""
    torch.manual_seed(0)
    aug = BatchAugmentation(MEAN, STD, crop_size=24, train=True, scale=scale, hflip=0.5, color_jitter=0.2,
                            backend=backend)
    batch = torch.randint(0, 256, (3, 4, 3, 32, 32), dtype=torch.uint8)
    out = aug(batch)
    assert out.dtype == torch.float32 and out.shape == (3, 4, 3, 24, 24)
    lo = min((0 - m) / s for m, s in zip(MEAN, STD))
    hi = max((1 - m) / s for m, s in zip(MEAN, STD))
    assert lo - 1e-4 <= out.min() and out.max() <= hi + 1e-4
    views = torch.randint(0, 256, (2, 2, 4, 3, 32, 32), dtype=torch.uint8)
    assert aug(views).shape == (2, 2, 4, 3, 24, 24)


@pytest.mark.parametrize("backend", BACKENDS)
def test_train_batch_augmentation_without_random_ops_still_crops(backend):
    aug = BatchAugmentation(MEAN, STD, crop_size=24, train=True, scale=(1.0, 1.0), hflip=0.0, backend=backend)
    assert aug(torch.randint(0, 256, (2, 4, 3, 32, 40), dtype=torch.uint8)).shape == (2, 4, 3, 24, 24)


@pytest.mark.parametrize("backend", BACKENDS)
def test_train_augmentation_is_the_same_on_every_frame_of_a_clip(backend):
    """One set of crop/flip/jitter parameters per clip: frames of a static clip stay identical, while different
    clips get different crops/flips."""
    torch.manual_seed(0)
    aug = BatchAugmentation(MEAN, STD, crop_size=24, train=True, hflip=0.5, color_jitter=0.3, backend=backend)
    frame = coords(1, 32, 32)
    batch = frame.expand(8, 4, 3, 32, 32).clone()  # 8 clips of one repeated frame
    out = aug(batch)
    for clip in out:
        torch.testing.assert_close(clip, clip[:1].expand_as(clip))
    assert not all(torch.allclose(out[0], out[k]) for k in range(1, 8))


def test_fused_crop_without_scale_jitter_is_an_exact_pixel_crop():
    """With scale (1, 1) the fused path cuts a crop_size square out of the frame: no resampling of the pixels."""
    torch.manual_seed(0)
    aug = BatchAugmentation((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), crop_size=8, train=True, scale=(1.0, 1.0), hflip=0.0)
    batch = torch.randint(0, 256, (4, 2, 3, 12, 16), dtype=torch.uint8)
    out = (aug(batch) * 255).round().to(torch.uint8)
    for clip, src in zip(out, batch):
        found = [(y, x) for y in range(12 - 8 + 1) for x in range(16 - 8 + 1)
                 if torch.equal(src[..., y:y + 8, x:x + 8], clip)]
        assert found, "the output is not a window of the input"


# ------------------------------------------------------------------------------------ TSN segment sampling
def test_segment_sampling_takes_one_frame_per_segment():
    """data.clip_sampling=segments: num_frames equal segments of the whole video, a random frame of each when
    training, each segment's centre otherwise; sampling_rate plays no part."""
    s = ClipSampling(num_frames=4, sampling_rate=99, clip_sampling="segments")
    rng = random.Random(0)
    draws = [s.clips(100, 30.0, "random", rng=rng)[0] for _ in range(50)]
    for clip in draws:
        assert [i // 25 for i in clip] == [0, 1, 2, 3]
    assert len({tuple(c) for c in draws}) > 40  # random offsets, not one fixed pick
    assert s.clips(100, 30.0, "center") == [[12, 37, 62, 87]]
    assert s.clips(100, 30.0, "uniform", num_clips=1) == [[12, 37, 62, 87]]
    views = s.clips(100, 30.0, "uniform", num_clips=2)  # MMAction2's test views: offsets 1/4 and 3/4
    assert views == [[6, 31, 56, 81], [18, 43, 68, 93]]
    assert s.clips(3, 30.0, "center") == [[0, 1, 1, 2]]  # shorter than num_frames: frames repeat
    repeated = s.repeated_clips(100, 30.0, 3, rng)
    assert len(repeated) == 3 and all([i // 25 for i in c] == [0, 1, 2, 3] for c in repeated)
    with pytest.raises(ValueError, match="keyframe_aligned"):
        s.repeated_clips(100, 30.0, 2, rng, keyframes=[0, 50])


def test_clip_sampling_setting_is_checked_and_follows_the_backbone():
    from flashvid.data import DataConfig
    from flashvid.data.clip_config import resolve_clip_config
    from flashvid.models import backbone_clip_settings

    with pytest.raises(ValueError, match="data.clip_sampling='segment' is not one of stride, segments"):
        resolve_clip_config(None, {"clip_sampling": "segment"})
    assert resolve_clip_config(backbone_clip_settings("tsn_resnet50")).clip_sampling == "segments"
    tsn, videomae = backbone_clip_settings("tsn_resnet50"), backbone_clip_settings("videomae_base")
    assert resolve_clip_config(tsn, {"clip_sampling": "stride"}).sampling.segments is False
    assert resolve_clip_config(videomae, {"clip_sampling": "segments"}).sampling.segments
    assert DataConfig.from_dict({"num_frames": 8}).clip_sampling == "stride"  # older checkpoints: the default


def test_segment_sampling_through_the_datamodule(demo_root):
    """A real loader with clip_sampling=segments: validation clips are the segment centres of each file."""
    from flashvid.data import VideoClassificationData
    from flashvid.data.decoding import open_video

    dm = VideoClassificationData.from_folders(demo_root / "train", demo_root / "val", num_frames=4, crop_size=32,
                                              clip_sampling="segments", batch_size=2, num_workers=0)
    dm.setup("fit")
    val = dm.datasets["val"]
    path = val.samples[0].path
    reader = open_video(path)
    info = reader.info
    reader.close()
    seg = info.num_frames / 4
    assert val._clips(path, info, None) == [[int(seg * (i + 0.5)) for i in range(4)]]
    batch = next(iter(dm.train_dataloader()))
    assert batch["video"].shape[:2] == (2, 4) and batch["failed"] == []


def test_timeline_windows_with_segment_sampling():
    """`flashvid predict` timelines with segments: each window's clip is one frame per segment of the window."""
    from flashvid.data.decoding import VideoInfo
    from flashvid.timeline import plan_windows

    s = ClipSampling(num_frames=4, clip_sampling="segments")
    windows = plan_windows(VideoInfo(num_frames=60, fps=10.0, width=64, height=64), s, window=2.0, stride=2.0)
    assert [w.indices for w in windows] == [(2, 7, 12, 17), (22, 27, 32, 37), (42, 47, 52, 57)]
