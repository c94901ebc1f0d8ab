"""JPEG frame stores (``flashvid prepare`` format=frames) on real encoded files: the same frames, indices and clip
shapes as the video copy; JPEGs decoded in the workers or batched on the device give the same clips (crops
included); a tiny model trains a step on stores and predicts on them; damaged stores are skipped and counted with a
one-line reason, in the workers and on the device; prepare's refusal rules hold."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest
import torch
from tiny_training import fit_moves_weights

from flashvid import VideoClassificationData, VideoClassifier
from flashvid.data.dataset import DecodeFailure, EncodedClip, VideoClipDataset, collate_clips
from flashvid.data.decoding import open_video
from flashvid.data.device_decode import decode_on_device
from flashvid.data.frame_store import FRAME_STORE_SUFFIX, FrameStoreReader
from flashvid.data.prepare import prepare
from flashvid.data.sampling import ClipSampling
from flashvid.data.sources import list_videos
from flashvid.data.transforms import MultiCrop, RandomShortSideCrop
from flashvid.data.video_file import VideoDecodeError

SHORT, FPS = 32, 10  # demo videos are 64x80 at 15 fps: stores and copies of 32x40 at 10 fps (2 frames of 3)
SAMPLING = ClipSampling(4, 2, target_fps=None)


@pytest.fixture(scope="module")
def copies(demo_root: Path, tmp_path_factory) -> dict[str, Path]:
    """The demo's train and val splits prepared both ways (the video copy and the frame store)."""
    out = tmp_path_factory.mktemp("copies")
    src = out / "src"  # 2 train and 1 val video per class (mp4 and avi) of the demo: a quick prepare
    for split, keep in (("train", 2), ("val", 1)):
        for folder in sorted((demo_root / split).iterdir()):
            (src / split / folder.name).mkdir(parents=True)
            for f in sorted(folder.iterdir())[-keep:]:
                shutil.copy(f, src / split / folder.name / f.name)
    folders = {"train_folder": src / "train", "val_folder": src / "val"}
    for fmt in ("video", "frames"):
        report = prepare(out / fmt, **folders, short_side=SHORT, max_fps=FPS, format=fmt, workers=1,
                         progress=False)
        assert not report.failed and report.converted == report.total
    return {"video": out / "video", "frames": out / "frames"}


def _pairs(copies: dict[str, Path], split: str = "train") -> list[tuple[str, str]]:
    stores = sorted(list_videos(copies["frames"] / split))
    assert stores and all(s.endswith(FRAME_STORE_SUFFIX) for s in stores)
    return [(str(Path(s).with_suffix(".mp4")).replace(str(copies["frames"]), str(copies["video"])), s)
            for s in stores]


def test_store_holds_the_video_copys_frames_at_the_same_indices(copies) -> None:
    for video, store in _pairs(copies):
        v, s = open_video(video, "pyav"), open_video(store)
        assert isinstance(s, FrameStoreReader)
        assert (s.info.num_frames, s.info.fps, s.info.width, s.info.height) == \
               (v.info.num_frames, v.info.fps, v.info.width, v.info.height)
        n = s.info.num_frames
        assert s.info.fps == FPS and n == 11  # 16 frames at 15 fps capped at 10
        a, b = v.frames_at(range(n)).float(), s.frames_at(range(n)).float()
        assert a.shape == b.shape == (n, 3, SHORT, 40)
        # frame i of the store is frame i of the copy: of all the store's frames, the nearest to the copy's i-th
        distance = (a[:, None] - b[None]).abs().mean(dim=(2, 3, 4))
        assert distance.argmin(dim=1).tolist() == list(range(n))
        # a store held in memory (a streaming reader's sample) reads the same
        data = Path(store).read_bytes()
        m = FrameStoreReader.from_bytes(data, name=store)
        assert m.info == s.info and torch.equal(m.frames_at([0, 5, 5, 99]), s.frames_at([0, 5, 5, 99]))
        with pytest.raises(VideoDecodeError, match="truncated"):
            FrameStoreReader.from_bytes(data[:-9], name=store)
        # the dataset draws the same clip indices from both (same info, same rng)
        ds = VideoClipDataset([], SAMPLING)
        assert ds._clips(store, s.info, random.Random(3)) == ds._clips(video, v.info, random.Random(3))
        v.close()
        s.close()


def _batch(paths: list[str], jpeg_decode: str, **kw) -> dict:
    ds = VideoClipDataset([type("S", (), {"path": p, "label": 0})() for p in paths], SAMPLING,
                          jpeg_decode=jpeg_decode, **kw)
    return collate_clips([ds[(i, 1)] for i in range(len(paths))])


@pytest.mark.parametrize("kw", [
    dict(transform=RandomShortSideCrop(24, 24, 32), clips_per_video=2),  # training: random crops, repeated clips
    dict(transform=MultiCrop(24, 3, 28), clip_mode="uniform", num_clips=2),  # testing: 2 clips x 3 crops
], ids=["train", "test"])
def test_device_decode_gives_the_workers_clips_and_crops(copies, kw) -> None:
    pairs = _pairs(copies)[:3]
    paths = [pairs[0][0], pairs[1][1], pairs[2][1]]  # a video among the stores: a mixed batch
    cpu = _batch(paths, "workers", **kw)
    dev = _batch(paths, "device", **kw)
    assert dev["video"] is None and sum(isinstance(p, EncodedClip) for p in dev["encoded"]) == 2
    dev = decode_on_device(dev, kw["transform"], "cpu")
    assert "encoded" not in dev and not dev["failed"]
    torch.testing.assert_close(dev["video"], cpu["video"], rtol=0, atol=0)
    assert dev["path"] == cpu["path"] and torch.equal(dev["index"], cpu["index"])


def test_stores_and_copies_planes_finish_on_the_device_in_one_batch(copies, tmp_path) -> None:
    """A batch of stores (JPEGs left for the device) and video copies (planes left for it) and a damaged store: each
    row as the workers would make it, in its place, the damaged one dropped and counted."""
    pairs = _pairs(copies)[:2]
    truncated = tmp_path / f"truncated{FRAME_STORE_SUFFIX}"
    truncated.write_bytes(Path(pairs[1][1]).read_bytes()[:200])
    paths = [pairs[0][1], pairs[0][0], str(truncated), pairs[1][0], pairs[1][1]]
    transform = RandomShortSideCrop(SHORT, SHORT)
    cpu = _batch(paths, "workers", transform=transform)
    dev = _batch(paths, "device", transform=transform, color_convert="device")
    assert dev["encoded"].count("planar") == 2 and sum(isinstance(p, EncodedClip) for p in dev["encoded"]) == 2
    dev = decode_on_device(dev, transform, "cpu")
    assert [f["path"] for f in dev["failed"]] == [f["path"] for f in cpu["failed"]] == [str(truncated)]
    assert dev["path"] == cpu["path"] and torch.equal(dev["index"], cpu["index"])
    assert dev["video"].shape == cpu["video"].shape == (4, 4, 3, SHORT, SHORT)
    for row in (0, 3):  # the stores: JPEGs decoded alike
        torch.testing.assert_close(dev["video"][row], cpu["video"][row], rtol=0, atol=0)
    for row in (1, 2):  # the copies: the same crop, converted on the device (within 3 levels of swscale)
        assert (dev["video"][row].int() - cpu["video"][row].int()).abs().max() <= 3


def _tiny_dm(folder: Path, **kw) -> VideoClassificationData:
    return VideoClassificationData.from_folders(folder / "train", folder / "val", batch_size=4, num_workers=0,
                                                num_frames=4, crop_size=24, resize_size=SHORT, **kw)


def test_a_tiny_model_trains_on_stores_decoded_on_the_device_and_predicts(copies) -> None:
    dm = _tiny_dm(copies["frames"], jpeg_decode="device")
    model = VideoClassifier("tiny_r2plus1d", labels=dm.labels, learning_rate=1e-2)
    assert fit_moves_weights(model, dm, max_steps=1)
    assert dm.datasets["train"].jpeg_decode == "device"
    stores = list_videos(copies["frames"] / "val")
    results = model.predict(stores)
    assert [r["path"] for r in results] == stores
    assert all(r["label"] in dm.labels and "error" not in r for r in results)


def _epochs(loader, epochs: range, limit: int | None = None) -> list[list[tuple[list[int], torch.Tensor]]]:
    """Each epoch's ``(indices, clips)`` batches, Lightning's ``set_epoch`` called first; ``limit`` cuts the last."""
    out = []
    for epoch in epochs:
        loader.sampler.set_epoch(epoch)
        out.append([])
        for b in loader:  # the pixels as the workers hand them over: RGB, or a copy's planes (color_convert=device)
            out[-1].append((b["index"].tolist(), b["video"] if b["video"] is not None else b["planar"]["y"]))
            if limit is not None and epoch == epochs[-1] and len(out[-1]) == limit:
                break
    return out


@pytest.mark.parametrize("fmt, color_convert", [("video", "workers"), ("video", "device"), ("frames", "workers")])
def test_both_formats_repeat_and_resume_exactly_across_an_epoch_boundary(copies, fmt, color_convert) -> None:
    """Two loaders over the same copy (2 workers running on across epoch ends) give the same training clips, epoch
    after epoch; one restored from the state saved mid-epoch 1 gives the rest of epoch 1, then epoch 2 as the
    uninterrupted one (issue 19: exact resume and determinism for both formats, across an epoch boundary; the
    copy's also with its planes left for the device)."""
    def loader():
        dm = VideoClassificationData.from_folders(copies[fmt] / "train", batch_size=2, num_workers=2, num_frames=4,
                                                  crop_size=24, resize_size=SHORT, seed=3,
                                                  color_convert=color_convert)
        dm.setup("fit")
        return dm.train_dataloader()

    def same(a, b) -> bool:
        return len(a) == len(b) and all(ia == ib and torch.equal(va, vb) for (ia, va), (ib, vb) in zip(a, b))

    first = loader()
    assert first.streaming and len(first) == 4
    expected = _epochs(first, range(3))
    assert (expected[0][0][1].dim() == 4) == (color_convert == "device")  # (B, T, S+2, S+2): luma planes
    assert all(sum(len(i) for i, _ in epoch) == 8 for epoch in expected)
    assert not same(expected[0], expected[1])  # a new order and new clips each epoch
    again = _epochs(loader(), range(3))
    assert all(same(a, b) for a, b in zip(again, expected))
    interrupted = loader()
    done = _epochs(interrupted, range(2), limit=2)  # epoch 0 whole, then 2 of epoch 1's 4 batches
    assert same(done[0], expected[0]) and same(done[1], expected[1][:2])
    state = interrupted.state_dict()
    assert (state["epoch"], state["position"]) == (1, 4)
    resumed = loader()
    resumed.load_state_dict(state)
    rest = _epochs(resumed, range(1, 3))
    assert same(rest[0], expected[1][2:]) and same(rest[1], expected[2])


def _damaged(copies: dict[str, Path], tmp_path: Path) -> dict[str, Path]:
    """A truncated store and one whose middle frames are garbage (markers intact, as a bad sector leaves them)."""
    good = Path(_pairs(copies)[0][1])
    data = good.read_bytes()
    truncated = tmp_path / f"truncated{FRAME_STORE_SUFFIX}"
    truncated.write_bytes(data[: len(data) // 2])
    reader = FrameStoreReader(good)
    buffer, bounds, _ = reader.jpegs_at(range(reader.info.num_frames))
    first = reader._offsets(0, 0)[0]
    reader.close()
    garbled = bytearray(data)
    for k in range(len(bounds) - 1):  # keep SOI and EOI of every frame, scramble what lies between
        a, b = first + bounds[k], first + bounds[k + 1]
        garbled[a + 2 : b - 2] = bytes(random.Random(k).getrandbits(8) for _ in range(b - a - 4))
    bad_jpeg = tmp_path / f"garbled{FRAME_STORE_SUFFIX}"
    bad_jpeg.write_bytes(bytes(garbled))
    return {"good": good, "truncated": truncated, "garbled": bad_jpeg}


def test_damaged_stores_are_skipped_and_counted_with_a_one_line_reason(copies, tmp_path) -> None:
    files = _damaged(copies, tmp_path)
    ds = VideoClipDataset([type("S", (), {"path": str(p), "label": 0})() for p in files.values()], SAMPLING)
    good, truncated, garbled = (ds[(i, 0)] for i in range(3))
    assert not isinstance(good, DecodeFailure)
    for failure, words in ((truncated, "truncated"), (garbled, "not a valid JPEG")):
        assert isinstance(failure, DecodeFailure) and words in failure.reason and "\n" not in failure.reason
        assert "flashvid prepare" in failure.reason  # the fix

    # decoded on the device: the truncated store fails in the worker, the garbled one at the decode step; the good
    # one stays, and both are listed, the rest of the batch untouched
    batch = _batch([str(p) for p in files.values()], "device")
    assert [f["path"] for f in batch["failed"]] == [str(files["truncated"])]
    batch = decode_on_device(batch, None, "cpu")
    assert [f["path"] for f in batch["failed"]] == [str(files["truncated"]), str(files["garbled"])]
    assert batch["failed"][1]["index"] == 2 and "not a valid JPEG" in batch["failed"][1]["reason"]
    assert batch["video"].shape[0] == 1 and batch["path"] == [str(files["good"])] and batch["index"].tolist() == [0]

    # flashvid doctor and predict name them, one line each
    from flashvid.doctor import probe_file

    assert probe_file(str(files["good"])).ok and probe_file(str(files["good"])).keyframe_interval == 1
    for name in ("truncated", "garbled"):
        probe = probe_file(str(files[name]))
        assert not probe.ok and "\n" not in probe.reason
    model = VideoClassifier("tiny_r2plus1d", labels=["a", "b"], data={"num_frames": 4, "crop_size": 24})
    results = model.predict([str(p) for p in files.values()])
    assert "error" not in results[0] and all("error" in r for r in results[1:])


def test_prepare_frames_keeps_the_refusal_rules_and_manifest(copies, demo_root, tmp_path) -> None:
    src = tmp_path / "src"
    shutil.copytree(demo_root / "val", src / "val")
    with pytest.raises(ValueError, match="inside the source folder"):
        prepare(src / "val" / "stores", val_folder=src / "val", format="frames", progress=False)
    # stores as the source: each listed as unreadable, with the reason
    report = prepare(tmp_path / "again", train_folder=copies["frames"] / "val", format="frames", progress=False)
    assert report.failed and all("already a flashvid frame store" in f["reason"] for f in report.failed)
    # a re-run is resumable (nothing redone); switching the format converts again, to the other extension
    out = tmp_path / "out"
    first = prepare(out, val_folder=src / "val", short_side=SHORT, format="frames", workers=1, progress=False)
    again = prepare(out, val_folder=src / "val", short_side=SHORT, format="frames", workers=1, progress=False)
    assert first.converted == first.total and again.unchanged == first.total and again.converted == 0
    video = prepare(out, val_folder=src / "val", short_side=SHORT, workers=1, progress=False)
    assert video.converted == first.total and not list((out / "val").rglob(f"*{FRAME_STORE_SUFFIX}"))
    with pytest.raises(ValueError, match="format must be one of video, frames"):
        prepare(out, val_folder=src / "val", format="jpeg", progress=False)


def _smooth_video(path: Path, n: int = 30, h: int = 96, w: int = 128, fps: int = 30) -> None:
    """Camera-like content JPEG was made for: smooth shading with a soft bright blob moving across it, written near
    losslessly (crf 4) so that what the comparison measures is the store's JPEG, not the source's encoding."""
    import av
    import numpy as np

    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.options = {"crf": "4", "preset": "veryfast"}
        for i in range(n):
            cx, cy = 20 + 3 * i, 30 + i
            blob = 120 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 300)
            rgb = np.stack([60 + 0.8 * xx + blob, 80 + 0.6 * yy + 0.5 * blob, 140 - 0.3 * xx + 0.2 * blob], -1)
            frame = av.VideoFrame.from_ndarray(np.clip(rgb, 0, 255).astype(np.uint8), format="rgb24")
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def test_store_frames_equal_the_video_decode_at_the_same_timestamps_within_jpeg_error(tmp_path) -> None:
    """Issue 19's check: each frame read from a store is the source's frame at the same timestamp, differing only by
    JPEG's loss (PSNR >= 40 dB at quality 95 on camera-like content); a store that held another frame (an off-by-one
    in the frame-rate cap, a wrong turn or size) is far below that."""
    src = tmp_path / "src" / "a" / "smooth.mp4"
    _smooth_video(src)
    out = tmp_path / "store"
    report = prepare(out, train_folder=tmp_path / "src", format="frames", jpeg_quality=95, short_side=96,
                     max_fps=15, workers=1, progress=False)
    assert report.converted == 1 and not report.failed
    store = FrameStoreReader(str(next(out.rglob(f"*{FRAME_STORE_SUFFIX}"))))
    video = open_video(str(src), "pyav")
    assert store.info.num_frames == 15 and store.info.fps == pytest.approx(15)
    for i in range(store.info.num_frames):
        t = i / store.info.fps
        stored = store.frames_at([i]).float()
        decoded = video.frames_at([round(t * video.info.fps)]).float()  # the source's frame at that timestamp
        psnr = 10 * torch.log10(255**2 / ((stored - decoded) ** 2).mean())
        assert psnr >= 40, (i, float(psnr))
    neighbour = video.frames_at([round(video.info.fps / store.info.fps) + 1]).float()  # the check can fail
    assert 10 * torch.log10(255**2 / ((store.frames_at([0]).float() - neighbour) ** 2).mean()) < 40
