"""Less decoding per clip, on real encoded files: PyAV's non-reference skip (B-frames of the lead-in and between
strided clip frames are not decoded) and multi-threaded decoding return exactly the frames of plain decoding; the
keyframe-aligned sampler starts clips on keyframes; ``clips_per_video`` takes several clips (own crops) from one
decode, keeps the number of steps per epoch, and is deterministic across worker counts and across a loader resume."""

from __future__ import annotations

import random
from pathlib import Path

import av
import pytest
import torch
from test_decoding import frame_numbers, numbered_frames

from flashvid.data import ClipSampling, VideoClassificationData, VideoClipDataset, VideoSample
from flashvid.data.decoding import PyAVReader, TorchCodecReader, keyframe_indices, torchcodec_status
from flashvid.data.demo import write_video

N = 120  # one keyframe (x264's default GOP is 250) and B-frames: a long lead-in for clips late in the file


@pytest.fixture(scope="module")
def long_gop(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("gop") / "long_gop.mp4"
    write_video(path, numbered_frames(N), 30)
    return path


CLIPS = [[60 + 4 * i for i in range(8)], [100, 101, 101, 119, 130], [3, 7, 11], [117]]


def _decoded(reader: PyAVReader, idx: list[int]) -> int:
    """How many frames the reader decodes for clip ``idx`` (counted on its own decode pass)."""
    count, inner = 0, reader._decode_from

    def counting(targets):
        nonlocal count
        for frame in inner(targets):
            count += 1
            yield frame

    reader._decode_from = counting  # type: ignore[method-assign]
    try:
        reader.frames_at(idx)
    finally:
        del reader._decode_from
    return count


def test_nonref_skip_returns_the_frames_of_plain_decoding(long_gop: Path) -> None:
    with av.open(str(long_gop)) as c:  # the file has non-reference frames, so the skip has something to skip
        c.streams.video[0].codec_context.skip_frame = "NONREF"
        assert sum(1 for _ in c.decode(video=0)) < N
    assert len(keyframe_indices(str(long_gop))) == 1
    plain, skip = PyAVReader(long_gop, skip_nonref=False), PyAVReader(long_gop, skip_nonref=True)
    assert skip._skip_ok and not plain._skip_ok
    for idx in CLIPS:
        a, b = plain.frames_at(idx), skip.frames_at(idx)
        assert torch.equal(a, b), f"frames {idx} differ with the non-reference skip"
        assert frame_numbers(b) == [min(i, N - 1) for i in idx]
    plain.close()
    skip.close()


@pytest.mark.parametrize("fps", [30, 29.97])
def test_nonref_skip_inside_strided_clips_is_exact_and_decodes_less(tmp_path: Path, fps: float) -> None:
    """Between a strided clip's frames too, and at NTSC rates, where pts -> index rounds: B-frames that are not
    clip frames are skipped, every clip frame comes back as plain decoding gives it."""
    path = tmp_path / "bframes.mp4"
    write_video(path, numbered_frames(N), fps)
    plain, skip = PyAVReader(path, skip_nonref=False), PyAVReader(path, skip_nonref=True)
    sampling = ClipSampling(8, 4, rate_jitter=1.5)  # jittered strides: irregular gaps between clip frames
    rng = random.Random(0)
    clips = [[4 * i for i in range(16)], [40 + 4 * i for i in range(16)], [10 + 2 * i for i in range(20)],
             [0, 0, 1, 5, 5, 6]]
    clips += [sampling.clips(plain.info.num_frames, plain.info.fps, "random", 1, rng)[0] for _ in range(12)]
    for idx in clips:
        a, b = plain.frames_at(idx), skip.frames_at(idx)
        assert torch.equal(a, b), f"frames {idx} differ with the non-reference skip"
    stride4 = clips[0]  # from the keyframe: no lead-in, only frames between clip frames to skip
    assert _decoded(skip, stride4) < _decoded(plain, stride4) - len(stride4) // 2  # most in-between B-frames
    plain.close()
    skip.close()


def test_nonref_skip_is_exact_on_real_footage(realclips: Path) -> None:
    def has_b_frames(p: Path) -> bool:  # the skip only acts on these (x264 web footage: Kinetics, phones)
        with av.open(str(p)) as c:
            return bool(c.streams.video) and c.streams.video[0].codec_context.has_b_frames

    files = [p for p in sorted(realclips.rglob("*")) if p.suffix in (".mp4", ".mov", ".mkv") and has_b_frames(p)]
    assert files, "no real clip with B-frames"
    sampling = ClipSampling(16, 4)
    rng = random.Random(1)
    for f in files:
        try:
            plain, skip = PyAVReader(f, skip_nonref=False), PyAVReader(f, skip_nonref=True)
        except Exception:  # noqa: BLE001  (a clip the readers reject is covered by the bad-input tests)
            continue
        for _ in range(2):
            idx = sampling.clips(plain.info.num_frames, plain.info.fps, "random", 1, rng)[0]
            assert torch.equal(plain.frames_at(idx), skip.frames_at(idx)), f"{f.name}: frames {idx} differ"
        plain.close()
        skip.close()


@pytest.mark.parametrize("reader", [pytest.param(TorchCodecReader, marks=pytest.mark.skipif(
    not torchcodec_status()[0], reason="torchcodec does not load here")), PyAVReader])
def test_threaded_decoding_returns_the_same_frames(long_gop: Path, reader) -> None:
    one, two = reader(long_gop, num_threads=1), reader(long_gop, num_threads=2)
    for idx in CLIPS:
        assert torch.equal(one.frames_at(idx), two.frames_at(idx))
    one.close()
    two.close()


@pytest.fixture(scope="module")
def short_gop(tmp_path_factory) -> Path:
    """Numbered frames with a keyframe every 10 frames."""
    path = tmp_path_factory.mktemp("short_gop") / "short_gop.mp4"
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=30)
        s.width, s.height, s.pix_fmt = 128, 64, "yuv420p"
        s.options = {"x264-params": "keyint=10:min-keyint=10:scenecut=0"}
        for f in numbered_frames(N):
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def test_keyframe_aligned_clips_start_on_keyframes(short_gop: Path) -> None:
    path = short_gop
    keys = keyframe_indices(str(path))
    assert keys == tuple(range(0, N, 10))
    sampling = ClipSampling(4, 4)  # stride 4 at 30 fps: a 16-frame span
    ds = VideoClipDataset([VideoSample(str(path), 0)], sampling, keyframe_aligned=True, decoder="pyav")
    starts = set()
    for epoch in range(12):
        item = ds[(0, epoch)]
        first = frame_numbers(item["video"])[0]
        assert first in keys
        starts.add(first)
    assert len(starts) > 1  # several keyframes are used, not only the first


@pytest.mark.parametrize("mode", ["clips_per_video", "keyframe_aligned"])
def test_rate_jitter_varies_the_stride_in_every_sampling_mode(short_gop: Path, mode: str) -> None:
    """``rate_jitter`` used to apply only to single, unaligned clips: with two clips per video strides were always
    4, so the small_data recipe never jittered. Each clip now draws its own stride, from the item's seeded rng."""
    sampling = ClipSampling(4, 4, target_fps=None, rate_jitter=2.0)  # strides in [2, 8]
    kw = {"clips_per_video": 2} if mode == "clips_per_video" else {"keyframe_aligned": True}
    ds = VideoClipDataset([VideoSample(str(short_gop), 0)], sampling, decoder="pyav", seed=5, **kw)
    strides = set()
    for epoch in range(8):
        video = ds[(0, epoch)]["video"]
        assert torch.equal(video, ds[(0, epoch)]["video"])  # deterministic per (seed, epoch, index)
        for clip in video if video.dim() == 5 else [video]:
            numbers = frame_numbers(clip)
            gaps = {b - a for a, b in zip(numbers, numbers[1:])}
            assert max(gaps) - min(gaps) <= 1 and 2 <= min(gaps) and max(gaps) <= 8, numbers  # one stride per clip
            strides.add(numbers[1] - numbers[0])
            if mode == "keyframe_aligned":
                assert numbers[0] % 10 == 0  # still on a keyframe
    assert len(strides) >= 3, strides


T, CROP = 4, 32


def _dm(demo_root: Path, **kw) -> VideoClassificationData:
    args = dict(num_frames=T, crop_size=CROP, batch_size=2, num_workers=0, seed=3, persistent_workers=False)
    args.update(kw)
    dm = VideoClassificationData.from_folders(demo_root / "train", **args)
    dm.setup("fit")
    return dm


def _batches(loader, n: int | None = None) -> list[dict]:
    out = []
    for i, b in enumerate(loader):
        if n is not None and i >= n:
            break
        out.append(b)
    return out


def test_clips_per_video_batches_hold_n_clips_per_video_and_keep_the_epoch(demo_root: Path) -> None:
    one, two = _dm(demo_root), _dm(demo_root, clips_per_video=2)
    assert len(two.train_dataloader()) == len(one.train_dataloader())  # same steps: the LR schedule holds
    b = next(iter(two.train_dataloader()))
    short = round(CROP * 256 / 224)
    assert b["video"].shape == (4, T, 3, short, short)
    labels, index = b["label"].tolist(), b["index"].tolist()
    assert labels[0::2] == labels[1::2] and index[0::2] == index[1::2] and index[0] != index[2]
    assert b["path"][0] == b["path"][1]
    assert not torch.equal(b["video"][0], b["video"][1])  # each clip its own start and crop
    with pytest.raises(ValueError, match="clips_per_video"):
        VideoClassificationData.from_folders(demo_root / "train", clips_per_video=0)


JITTER = {"rate_jitter": 1.5}


def test_clips_per_video_is_deterministic_across_workers_and_resumes(demo_root: Path) -> None:
    """With rate jitter on: each clip's stride is drawn from the item's seeded rng too."""
    runs = {}
    for workers in (0, 2):
        dm = _dm(demo_root, clips_per_video=2, num_workers=workers, seed=9, augmentation=JITTER)
        loader = dm.train_dataloader()
        loader.sampler.set_epoch(1)
        runs[workers] = _batches(loader)
    assert len(runs[0]) == len(runs[2])
    for a, b in zip(runs[0], runs[2]):
        assert torch.equal(a["index"], b["index"]) and torch.equal(a["video"], b["video"])

    # exact resume: a loader restored from the state after 2 batches yields the rest of the epoch unchanged
    dm = _dm(demo_root, clips_per_video=2, seed=9, augmentation=JITTER)
    loader = dm.train_dataloader()
    loader.sampler.set_epoch(1)
    it = iter(loader)
    next(it), next(it)
    state = loader.state_dict()
    fresh = _dm(demo_root, clips_per_video=2, seed=9, augmentation=JITTER).train_dataloader()
    fresh.load_state_dict(state)
    fresh.sampler.set_epoch(1)
    rest = _batches(fresh)
    assert len(rest) == len(runs[0]) - 2
    for a, b in zip(rest, runs[0][2:]):
        assert torch.equal(a["index"], b["index"]) and torch.equal(a["video"], b["video"])


def test_repeated_starts_share_one_span() -> None:
    s = ClipSampling(16, 4)  # span 64 frames at 30 fps
    rng = random.Random(0)
    for _ in range(50):
        starts = s.repeated_starts(600, 30.0, 3, rng)
        assert len(starts) == 3 and max(starts) - min(starts) <= s.span(30.0)
        assert all(0 <= x <= 600 - s.span(30.0) for x in starts)
    assert s.repeated_starts(40, 30.0, 2, rng) == [0.0, 0.0]  # shorter than a clip: both start at 0


@pytest.mark.parametrize("skip", [True, False])
def test_skip_nonref_option_reaches_the_readers_and_keeps_the_frames(long_gop: Path, monkeypatch, skip: bool) -> None:
    """``data.skip_nonref`` (a datamodule option, once a module flag the benchmarks flipped) is what the training
    dataset's PyAV readers run with, and either way a clip's frames are the same."""
    from flashvid.data import dataset as dataset_module

    opened: list[bool] = []

    def spy(*args, **kwargs):
        reader = dataset_module.open_video.__wrapped__(*args, **kwargs)  # type: ignore[attr-defined]
        opened.append(reader._skip_ok)
        return reader

    spy.__wrapped__ = dataset_module.open_video  # type: ignore[attr-defined]
    monkeypatch.setattr(dataset_module, "open_video", spy)
    sample = [VideoSample(str(long_gop), 0)]
    dms = [VideoClassificationData(train=sample, labels=["a"], num_frames=8, crop_size=CROP, batch_size=1,
                                   num_workers=0, decoder="pyav", skip_nonref=s, persistent_workers=False)
           for s in (skip, True)]
    for dm in dms:
        dm.setup("fit")
    assert dms[0].datasets["train"].skip_nonref is skip
    a, b = (dm.datasets["train"].load(str(long_gop), random.Random(5)) for dm in dms)
    assert opened[0] is skip and opened[1] is True
    assert torch.equal(a, b)
