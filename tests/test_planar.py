"""YUV planes cut in the workers and converted to RGB on the training device (``data.color_convert=device``), on
real encoded files: the conversion matches swscale's for each colour matrix, range and crop phase; the device path
gives a batch the workers' crops, rows and labels (mixed batches included); what it does not cover is converted in
the workers; a tiny model trains with it."""

from __future__ import annotations

import shutil
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from av.video.reformatter import VideoReformatter
from tiny_training import fit_moves_weights

from flashvid import VideoClassificationData, VideoClassifier
from flashvid.data.clip_cost import training_clip_cost
from flashvid.data.dataset import PLANAR_ROW, VideoClipDataset, collate_clips
from flashvid.data.device_decode import decode_on_device
from flashvid.data.planar import NotPlanar, clip_planes, planar_rgb, planar_window
from flashvid.data.prepare import prepare
from flashvid.data.sampling import ClipSampling
from flashvid.data.sources import list_videos
from flashvid.data.transforms import RandomShortSideCrop, ShortSideCenterCrop

SHORT, FPS = 32, 10  # the demo's 64x80 videos prepared to 32x40 copies
SAMPLING = ClipSampling(4, 2, target_fps=None)


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = ((a.double() - b.double()) ** 2).mean().item()
    return 10 * np.log10(255**2 / max(mse, 1e-12))


def _encode(path: Path, pix_fmt: str, colorspace: int, color_range: int, size: tuple[int, int] = (48, 40)) -> Path:
    """Five frames of blocks of colour (edges and flat areas, as footage has) in ``pix_fmt``, tagged."""
    rng = np.random.default_rng(colorspace)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = *size, pix_fmt
        stream.codec_context.colorspace = colorspace
        if color_range:
            stream.codec_context.color_range = color_range
        for _ in range(5):
            cells = rng.integers(0, 256, (size[1] // 8, size[0] // 8, 3), dtype=np.uint8)
            rgb = np.ascontiguousarray(cells.repeat(8, 0).repeat(8, 1))
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=pix_fmt)
            frame.colorspace = colorspace
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


@pytest.mark.parametrize("pix_fmt, colorspace, color_range", [
    ("yuv420p", 2, 0),   # untagged: swscale's default, BT.601 limited (what flashvid prepare writes)
    ("yuv420p", 1, 1),   # BT.709 limited (HD cameras and phones)
    ("yuvj420p", 5, 2),  # BT.601 full range (JPEG range: some phones and webcams)
], ids=["bt601", "bt709", "full_range"])
def test_planes_convert_to_the_rgb_swscale_gives(tmp_path, pix_fmt, colorspace, color_range) -> None:
    path = _encode(tmp_path / "tagged.mp4", pix_fmt, colorspace, color_range)
    with av.open(str(path)) as c:
        frames = list(c.decode(video=0))
    assert (frames[0].format.name, int(frames[0].colorspace)) == (pix_fmt, colorspace)  # the tags survived
    rgb = VideoReformatter()
    whole = torch.stack([torch.from_numpy(rgb.reformat(f, format="rgb24").to_ndarray()) for f in frames])
    # every phase of a crop against the chroma grid, and crops touching the right and bottom edges
    for box in [(0, 0, 32), (1, 0, 32), (0, 1, 32), (1, 1, 30), (8, 16, 32), (7, 15, 32), (0, 0, 40)]:
        top, left, size = box
        out = planar_rgb(clip_planes(frames, [box], len(frames)))[0]
        expected = whole[:, top : top + size, left : left + size].permute(0, 3, 1, 2)
        assert out.shape == expected.shape == (5, 3, size, size)
        assert (out.int() - expected.int()).abs().max() <= 3 and _psnr(out, expected) >= 44, box
    for box in [(0, 0, 31), (0, 17, 32)]:  # an odd size, a box past the edge: the worker converts those
        with pytest.raises(NotPlanar):
            planar_window(frames[0], box)
    with pytest.raises(ValueError, match="4 frames for 1 clips of 5"):  # never a clip with frames left unset
        clip_planes(frames[:4], [(0, 0, 32)], len(frames))


def test_a_window_past_the_frame_edge_repeats_its_last_row_and_column() -> None:
    """The clip's planes are cut by slicing into preallocated arrays (``np.pad`` cost a worker 2.3 ms a clip): the
    padding equals ``np.pad(mode="edge")`` wherever the window runs past the plane."""
    from flashvid.data.planar import _cut_into

    rng = np.random.default_rng(0)
    plane = rng.integers(0, 256, size=(9, 12), dtype=np.uint8)
    for top, left, n in [(0, 0, 6), (5, 0, 6), (0, 8, 6), (4, 7, 6), (8, 11, 3), (0, 0, 9)]:
        out = np.full((n, n), 7, np.uint8)
        _cut_into(out, plane, top, left)
        c = plane[top : top + n, left : left + n]
        assert np.array_equal(out, np.pad(c, ((0, n - c.shape[0]), (0, n - c.shape[1])), mode="edge")), (top, left)


@pytest.fixture(scope="module")
def copies(demo_root: Path, tmp_path_factory) -> Path:
    """Two train and one val video per class of the demo (mp4 and avi), prepared as video copies."""
    out = tmp_path_factory.mktemp("planar")
    for split, keep in (("train", 2), ("val", 1)):
        for folder in sorted((demo_root / split).iterdir()):
            (out / "src" / split / folder.name).mkdir(parents=True)
            for f in sorted(folder.iterdir())[-keep:]:
                shutil.copy(f, out / "src" / split / folder.name / f.name)
    report = prepare(out / "copy", train_folder=out / "src" / "train", val_folder=out / "src" / "val",
                     short_side=SHORT, max_fps=FPS, workers=1, progress=False)
    assert not report.failed and report.converted == report.total
    return out


def _batch(paths: list[str], color_convert: str, transform, mode: str = "random", epoch: int = 1, **kw) -> dict:
    samples = [type("S", (), {"path": p, "label": i})() for i, p in enumerate(paths)]
    ds = VideoClipDataset(samples, SAMPLING, transform, mode, color_convert=color_convert, **kw)
    return collate_clips([ds[(i, epoch)] for i in range(len(paths))])


@pytest.mark.parametrize("transform, mode, clips", [
    (RandomShortSideCrop(SHORT, SHORT), "random", 1),  # training: a random square of the short side
    (RandomShortSideCrop(SHORT, SHORT), "random", 2),  # ... 2 clips of each video, each its own crop (recipes)
    (ShortSideCenterCrop(24, SHORT), "center", 1),     # validation: the centre crop
], ids=["train", "train_2_clips_per_video", "val"])
def test_device_conversion_gives_the_workers_crops_rows_and_labels(copies, demo_root, transform, mode, clips) -> None:
    prepared = sorted(list_videos(copies / "copy" / "train"))
    raw_avi = sorted(p for p in list_videos(demo_root / "train") if p.endswith(".avi"))[0]  # decoded to RGB
    paths = [*prepared[:2], raw_avi, *prepared[2:5]]
    kw = {"clips_per_video": clips} if clips > 1 else {}
    workers = _batch(paths, "workers", transform, mode, **kw)
    device = _batch(paths, "device", transform, mode, **kw)
    assert device["video"] is None and "planar" in device
    assert device["encoded"].count(PLANAR_ROW) == 5 * clips and isinstance(device["encoded"][2 * clips], torch.Tensor)
    assert len(device["label"]) == len(paths) * clips and torch.equal(device["label"], workers["label"])
    # half the bytes of RGB cross from the worker (and are pinned and copied): a square a little over the crop
    rgb_rows = workers["video"][: 5 * clips].numel()  # as many RGB rows
    assert device["planar"]["y"].numel() + device["planar"]["uv"].numel() < 0.6 * rgb_rows
    again = _batch(paths, "device", transform, mode, **kw)
    assert torch.equal(again["planar"]["y"], device["planar"]["y"]) and again["planar"]["phase"] == \
        device["planar"]["phase"]  # the same item gives the same planes
    decoded = decode_on_device(device, transform, "cpu")
    assert "encoded" not in decoded and "planar" not in decoded and not decoded["failed"]
    assert decoded["video"].shape == workers["video"].shape
    avi = slice(2 * clips, 3 * clips)
    assert torch.equal(decoded["video"][avi], workers["video"][avi])  # the avi's rows, as the worker made them
    if clips > 1:  # each clip of a video has its own crop
        assert not torch.equal(decoded["video"][0], decoded["video"][1])
    for row in range(len(paths) * clips):  # each copy's row: the same crop (another crop is far more than 3 levels off)
        diff = (decoded["video"][row].int() - workers["video"][row].int()).abs().max()
        assert diff <= 3 and _psnr(decoded["video"][row], workers["video"][row]) >= 44, row
    assert decoded["path"] == workers["path"] and torch.equal(decoded["label"], workers["label"])
    if mode == "random":  # another epoch: other crops, still the workers' ones
        other = decode_on_device(_batch(paths, "device", transform, mode, epoch=2, **kw), transform, "cpu")
        assert not torch.equal(other["video"], decoded["video"])
        assert _psnr(other["video"], _batch(paths, "workers", transform, mode, epoch=2, **kw)["video"]) >= 44


def test_clips_the_conversion_does_not_cover_are_converted_in_the_workers(copies, tmp_path) -> None:
    prepared = sorted(list_videos(copies / "copy" / "train"))[:2]
    # a crop that needs a resize (a short side drawn above the copy's): RGB from the worker, as before
    resized = _batch(prepared, "device", RandomShortSideCrop(24, SHORT + 8, SHORT + 8))
    assert "planar" not in resized and resized["video"].shape[-2:] == (24, 24)
    # 4:4:4 frames (another layout of the planes) of the copies' size: the worker converts them, in their row
    # beside a BT.709 file and a copy (BT.601), each converted with its own matrix
    full_chroma = str(_encode(tmp_path / "yuv444.mp4", "yuv444p", 2, 0, size=(40, SHORT)))
    bt709 = str(_encode(tmp_path / "bt709.mp4", "yuv420p", 1, 1, size=(40, SHORT)))
    transform = RandomShortSideCrop(SHORT, SHORT)
    paths = [full_chroma, bt709, prepared[0]]
    batch = _batch(paths, "device", transform)
    assert isinstance(batch["encoded"][0], torch.Tensor) and batch["encoded"][1:] == [PLANAR_ROW, PLANAR_ROW]
    video = decode_on_device(batch, transform, "cpu")["video"]
    expected = _batch(paths, "workers", transform)["video"]
    assert torch.equal(video[0], expected[0])
    assert _psnr(video[1], expected[1]) >= 44 and _psnr(video[2], expected[2]) >= 44


def test_a_tiny_model_trains_with_colours_converted_on_the_device(copies) -> None:
    def dm(color_convert: str) -> VideoClassificationData:  # 2 clips per video: the recipes' repeated sampling
        return VideoClassificationData.from_folders(copies / "copy" / "train", copies / "copy" / "val", batch_size=2,
                                                    num_workers=0, num_frames=4, crop_size=24, resize_size=SHORT,
                                                    color_convert=color_convert, clips_per_video=2)

    auto = dm("auto")
    auto.setup("fit")
    assert auto.datasets["train"].color_convert == "workers"  # auto: the device only when it is a GPU
    data = dm("device")
    model = VideoClassifier("tiny_r2plus1d", labels=data.labels, learning_rate=1e-2)
    assert fit_moves_weights(model, data, max_steps=2)
    assert data.datasets["train"].color_convert == "device"
    batch = next(iter(data.train_dataloader()))
    assert batch["planar"]["y"].shape[0] == 4 and len(batch["label"]) == 4  # the batches did carry planes
    with pytest.raises(ValueError, match="color_convert"):
        dm("gpu")


def test_doctor_times_a_clip_as_training_with_planes_runs_it(copies) -> None:
    """``flashvid doctor``'s clip cost goes through the planes when training will (it failed on them: the store
    estimate needs the clip's pixels)."""
    data = VideoClassificationData.from_folders(copies / "copy" / "train", batch_size=4, num_workers=0, num_frames=4,
                                                crop_size=24, resize_size=SHORT, color_convert="device")
    paths = sorted(list_videos(copies / "copy" / "train"))
    cost = training_clip_cost(data, paths, files=3)
    assert data.datasets["train"].color_convert == "device"
    assert cost is not None and cost.files == 3 and cost.video_ms > 0 and cost.store_ms > 0
