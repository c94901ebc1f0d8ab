"""Decoding on real encoded files: both readers, frame identity, past-the-end clips, odd frame rates, the auto
choice (and its fallback when torchcodec cannot load) and per-file sampling by each video's own fps.

Test videos carry their frame number in pixels (8 binary stripes) under a red band, so a test reads back which
source frame a decoder returned, and whether it is RGB, instead of trusting the decoder's own bookkeeping.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import textwrap
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from flashvid.data import ClipSampling, VideoClipDataset, VideoSample, open_video, resolve_decoder
from flashvid.data.decoding import PyAVReader, TorchCodecReader, VideoDecodeError, _pyav_open_options, torchcodec_status
from flashvid.data.demo import write_video
from flashvid.data.sources import list_videos

REPO = Path(__file__).resolve().parents[1]
BITS, CELL, BAND = 8, 16, 16  # 8 stripes of 16 px: whole macroblocks, so lossy codecs keep them clean
READERS = {"torchcodec": TorchCodecReader, "pyav": PyAVReader}
ODD_FPS = Fraction(30000, 1001)

needs_torchcodec = pytest.mark.skipif(not torchcodec_status()[0], reason="torchcodec does not load here")


def numbered_frames(n: int) -> np.ndarray:
    """``(n, 64, 128, 3)`` frames: a red top band, then frame ``i``'s bits as bright/dark vertical stripes."""
    frames = np.full((n, BAND + 48, BITS * CELL, 3), 24, np.uint8)
    frames[:, :BAND] = (220, 30, 30)
    for i in range(n):
        for b in range(BITS):
            if i >> b & 1:
                frames[i, BAND:, b * CELL : (b + 1) * CELL] = 230
    return frames


def frame_numbers(video: torch.Tensor) -> list[int]:
    """Read the stripes back from decoded uint8 ``(N, 3, H, W)`` frames."""
    assert video.dtype == torch.uint8 and video.shape[1] == 3
    cells = video[:, :, BAND + 4 : -4].float().mean(dim=(1, 2))  # (N, W): column brightness
    bits = cells[:, CELL // 2 :: CELL] > 127
    return [int(sum(int(v) << b for b, v in enumerate(row))) for row in bits.tolist()]


def assert_rgb(video: torch.Tensor) -> None:
    band = video[:, :, 2 : BAND - 2, 4:-4].float().mean(dim=(0, 2, 3))
    assert band[0] > 180 and band[1] < 80 and band[2] < 80, f"top band should be red in RGB order, got {band}"


@pytest.fixture(scope="module")
def numbered(tmp_path_factory) -> dict[tuple[str, str], tuple[Path, int, float]]:
    """(container, fps name) -> (path, frame count, fps): mp4/h264 and avi/mpeg4 at 15 and 30000/1001 fps."""
    root = tmp_path_factory.mktemp("numbered")
    out = {}
    for ext in (".mp4", ".avi"):
        for fps_name, fps, n in (("15", Fraction(15), 30), ("29.97", ODD_FPS, 45)):
            path = root / f"numbered {fps_name}fps{ext}"  # a space in the name, as real downloads have
            write_video(path, numbered_frames(n), fps)
            out[(ext, fps_name)] = (path, n, float(fps))
    return out


CASES = [(ext, f) for ext in (".mp4", ".avi") for f in ("15", "29.97")]


@pytest.mark.parametrize("case", CASES, ids=[f"{e[1:]}-{f}fps" for e, f in CASES])
def test_reader_returns_the_requested_frames(numbered, decoder: str, case: tuple[str, str]):
    """Unsorted, repeated and past-the-end indices: each must come back as that source frame (last one past it)."""
    path, n, fps = numbered[case]
    reader = READERS[decoder](path)
    try:
        assert reader.info.num_frames == n
        assert reader.info.fps == pytest.approx(fps, rel=1e-4)
        assert (reader.info.width, reader.info.height) == (BITS * CELL, BAND + 48)
        wanted = [n // 2, 0, 3, 3, n - 1, n + 7, 2 * n, n // 3]
        video = reader.frames_at(wanted)
    finally:
        reader.close()
    assert video.dtype == torch.uint8 and video.shape == (len(wanted), 3, BAND + 48, BITS * CELL)
    assert frame_numbers(video) == [min(i, n - 1) for i in wanted]
    assert_rgb(video)


@needs_torchcodec
@pytest.mark.parametrize("case", CASES, ids=[f"{e[1:]}-{f}fps" for e, f in CASES])
def test_decoders_agree_pixelwise(numbered, case: tuple[str, str]):
    """torchcodec and PyAV decode the same file to the same pixels (both use FFmpeg's decoders), past the end too."""
    path, n, _ = numbered[case]
    wanted = list(range(0, n + 5, 2))
    a, b = TorchCodecReader(path), PyAVReader(path)
    try:
        assert a.info == b.info
        fa, fb = a.frames_at(wanted), b.frames_at(wanted)
    finally:
        a.close()
        b.close()
    assert fa.shape == fb.shape
    assert (fa.float() - fb.float()).abs().mean() < 1.0


@needs_torchcodec
def test_torchcodec_counts_frames_of_headerless_webm(tmp_path):
    """WebM stores no frame count: estimating it from a rounded duration dropped the last frame at 29.97 fps."""
    path = tmp_path / "odd.webm"
    write_video(path, numbered_frames(20), ODD_FPS)
    reader = TorchCodecReader(path)
    assert reader.info.num_frames == PyAVReader(path).info.num_frames == 20
    assert frame_numbers(reader.frames_at([19, 40])) == [19, 19]


def test_unreadable_files_raise_decode_errors_naming_the_file(tmp_path, numbered, decoder: str):
    """Broken downloads must surface as VideoDecodeError(path, reason), not as a crash deep in FFmpeg."""
    good = numbered[(".mp4", "15")][0].read_bytes()
    cases = {"empty.mp4": b"", "text.mp4": b"not a video at all\n" * 50, "truncated.mp4": good[: len(good) // 3]}
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(VideoDecodeError) as err:
            reader = open_video(path, decoder)
            reader.frames_at([0, 5])
        assert err.value.path == str(path) and err.value.reason
    with pytest.raises(VideoDecodeError, match="not found"):
        open_video(tmp_path / "missing.mp4", decoder)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="the ffmpeg CLI writes the non-UTF-8 title")
def test_non_utf8_metadata_does_not_stop_decoding(tmp_path, numbered, decoder: str):
    """A Latin-1 title (old cameras, editors) must not fail the open: PyAV <= 18 needs ``metadata_errors`` for it,
    PyAV 19 rejects that argument (every file failed on Python 3.12) and decodes metadata leniently itself."""
    source, n, _ = numbered[(".mp4", "15")]
    path = tmp_path / "latin1_title.mp4"
    subprocess.run([shutil.which("ffmpeg"), "-v", "error", "-y", "-i", str(source), "-c", "copy",
                    "-metadata", b"title=caf\xe9", str(path)], check=True)
    reader = open_video(path, decoder)
    try:
        assert reader.info.num_frames == n
        assert frame_numbers(reader.frames_at([0, n - 1])) == [0, n - 1]
    finally:
        reader.close()


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="the ffmpeg CLI writes the rotation")
def test_pyav_without_a_frame_rate_still_applies_the_rotation(tmp_path, numbered):
    """A stream without a usable frame rate is read by counting frames from the start: those frames must be turned
    by the display matrix (phone videos) exactly as the seeking path turns them."""
    source, n, _ = numbered[(".mp4", "15")]
    path = tmp_path / "rotated.mp4"
    subprocess.run([shutil.which("ffmpeg"), "-v", "error", "-y", "-i", str(source), "-c", "copy",
                    "-metadata:s:v:0", "rotate=90", str(path)], check=True)
    wanted = [n // 2, 0, 3, 3, n - 1, n + 7]
    reader = PyAVReader(path)
    try:
        seeking = reader.frames_at(wanted)
        reader._tick = 0.0  # what a stream without a frame rate sets: frames are placed by decode order
        counting = reader.frames_at(wanted)
    finally:
        reader.close()
    assert seeking.shape == (len(wanted), 3, BITS * CELL, BAND + 48)  # upright: 64 wide, 128 high
    assert counting.shape == seeking.shape and torch.equal(counting, seeking)
    as_encoded = torch.rot90(seeking, -1, dims=(2, 3))  # undo the quarter turn the display matrix asks for
    assert_rgb(as_encoded)
    assert frame_numbers(as_encoded) == [min(i, n - 1) for i in wanted]


def test_pyav_open_options_follow_the_installed_pyav():
    """``metadata_errors`` goes to PyAV 18 and older only (PyAV 19's ``av.open`` raises TypeError on it)."""
    assert _pyav_open_options("18.1.0") == {"metadata_errors": "ignore"}
    assert _pyav_open_options("19.0.2") == {} and _pyav_open_options("20.0.0rc1") == {}


@pytest.fixture
def pyav_19(monkeypatch: pytest.MonkeyPatch):
    """A switch that gives the installed PyAV the ``av.open`` of PyAV 19 (which needs Python >= 3.12, so it cannot
    be installed here): its version string, and a TypeError for the ``metadata_errors`` argument it removed."""
    import av

    real_open = av.open

    def open_without_metadata_errors(*args, **kwargs):
        if "metadata_errors" in kwargs:
            raise TypeError("open() got an unexpected keyword argument 'metadata_errors'")
        return real_open(*args, **kwargs)

    def switch_on() -> None:
        monkeypatch.setattr(av, "open", open_without_metadata_errors)
        monkeypatch.setattr(av, "__version__", "19.0.0")

    return switch_on


def test_every_pyav_read_works_with_pyav_19s_open(tmp_path, numbered, pyav_19):
    """On PyAV 19 the keyframe scans returned nothing and ``flashvid prepare`` failed every file, because they
    passed ``metadata_errors`` to ``av.open`` themselves: each read of a real file must give what it gives on the
    installed PyAV."""
    from flashvid.data.decoding import keyframe_indices, keyframe_interval
    from flashvid.data.prepare import PrepareSettings, convert_file
    from flashvid.doctor import probe_file

    path, n, _ = numbered[(".mp4", "15")]
    keyframe_indices.cache_clear()
    gop, keys = keyframe_interval(path), keyframe_indices(str(path))
    assert gop and keys and keys[0] == 0
    pyav_19()
    keyframe_indices.cache_clear()
    try:
        assert keyframe_interval(path) == gop
        assert keyframe_indices(str(path)) == keys
    finally:
        keyframe_indices.cache_clear()
    reader = PyAVReader(path)
    try:
        assert frame_numbers(reader.frames_at([0, n // 2, n - 1])) == [0, n // 2, n - 1]
    finally:
        reader.close()
    out = convert_file(str(path), str(tmp_path / "conv.mp4"), str(tmp_path / "keep.mp4"),
                       PrepareSettings(short_side=32, keyframe_interval=0.2))
    assert out["action"] == "converted", out
    assert out["out"]["frames"] == n and PyAVReader(out["dst"]).info.num_frames == n
    probe = probe_file(str(path), "train", None, "pyav")
    assert probe.ok and probe.num_frames == n and probe.keyframe_interval == gop, probe


def test_every_read_mode_av_open_goes_through_open_container():
    """Reads that called ``av.open`` themselves missed the PyAV 18/19 difference: only write-mode opens may."""
    import ast

    direct = []
    for path in sorted((REPO / "flashvid").rglob("*.py")):
        tree = ast.parse(path.read_text())
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)) or fn.name == "open_container":
                continue
            for call in ast.walk(fn):
                if not (isinstance(call, ast.Call) and ast.unparse(call.func) == "av.open"):
                    continue
                mode = call.args[1] if len(call.args) > 1 else next(
                    (k.value for k in call.keywords if k.arg == "mode"), None)
                if not (isinstance(mode, ast.Constant) and str(mode.value).startswith("w")):
                    direct.append(f"{path.relative_to(REPO)}:{call.lineno} in {fn.name}()")
    assert not direct, f"read-mode av.open outside open_container: {direct}"


def test_sampling_uses_each_videos_real_fps(tmp_path, decoder: str):
    """The same seconds are sampled from 15, 29.97 and 30 fps files: ``sampling_rate`` counts frames at
    ``target_fps`` and ``clip_duration`` counts seconds; ``target_fps=None`` is a plain frame stride."""
    rates = {"15": Fraction(15), "29.97": ODD_FPS, "30": Fraction(30)}
    samples = []
    for name, fps in rates.items():
        path = tmp_path / f"v{name}.mp4"
        write_video(path, numbered_frames(int(4 * fps)), fps)  # 4 s each
        samples.append(VideoSample(str(path), 0))
    settings = [
        (ClipSampling(num_frames=8, sampling_rate=4, target_fps=30.0), lambda fps: 4 / 30.0),
        (ClipSampling(num_frames=8, clip_duration=2.0), lambda fps: 2.0 / 8),
        (ClipSampling(num_frames=8, sampling_rate=3, target_fps=None), lambda fps: 3 / fps),
    ]
    for sampling, seconds_per_step in settings:
        ds = VideoClipDataset(samples, sampling, clip_mode="center", decoder=decoder)
        for i, fps in enumerate(map(float, rates.values())):
            numbers = frame_numbers(ds[i]["video"])
            assert len(numbers) == 8
            steps = np.diff(numbers) / fps
            # each step is one stride rounded down to whole frames: within one source frame of the target
            assert np.all(np.abs(steps - seconds_per_step(fps)) <= 1 / fps + 1e-9), (sampling, fps, numbers)
            span = (numbers[-1] - numbers[0]) / fps
            assert span == pytest.approx(7 * seconds_per_step(fps), abs=1 / fps), (sampling, fps, numbers)


def test_short_video_repeats_its_last_frame(tmp_path, decoder: str):
    """A clip longer than the video pads with the last frame rather than failing or wrapping around."""
    path = tmp_path / "short.avi"
    write_video(path, numbered_frames(6), 15)
    ds = VideoClipDataset([VideoSample(str(path), 1)], ClipSampling(num_frames=8, sampling_rate=2, target_fps=None),
                          clip_mode="random", decoder=decoder)
    clip = ds[0]["video"]
    assert frame_numbers(clip) == [0, 2, 4, 5, 5, 5, 5, 5]


_CHILD = '''
import logging, sys
logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="LOG %(name)s: %(message)s")
from flashvid.data import VideoClassificationData
dm = VideoClassificationData.from_paths(sys.argv[1:], num_workers=0, num_frames=4, crop_size=32)
dm.setup("predict")
batch = next(iter(dm.predict_dataloader()))
print("SHAPE", tuple(batch["video"].shape), "FAILED", batch["failed"])
'''


def _run_child(env: dict[str, str], video: Path) -> str:
    """A fresh interpreter (so nothing is cached) whose ``sitecustomize`` makes torchcodec's import fail."""
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(_CHILD), str(video)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_auto_decoder_falls_back_to_pyav_when_torchcodec_cannot_load(env_without_torchcodec, numbered):
    """Run for real in a fresh interpreter whose torchcodec import fails: clips still decode, via PyAV, and the log
    says so and why."""
    video = numbered[(".avi", "29.97")][0]
    out = _run_child(env_without_torchcodec, video)
    lines = [ln for ln in out.splitlines() if "flashvid decoder:" in ln]
    assert len(lines) == 1, out
    assert "pyav" in lines[0] and "libavutil.so.59: cannot open shared object file" in lines[0], lines[0]
    assert "SHAPE (1, 4, 3, 32, 32) FAILED []" in out


@needs_torchcodec
def test_auto_decoder_picks_per_container_when_torchcodec_loads(caplog, numbered):
    """The control for the fallback test (in this process, where torchcodec loads): auto reads MP4/MOV with PyAV and
    AVI with torchcodec (what measured faster per clip for each), says so once, and both give the same frames."""
    resolve_decoder.cache_clear()  # the choice is logged once per process: forget it so it is logged again
    with caplog.at_level(logging.INFO, logger="flashvid.data.decoding"):
        assert resolve_decoder("auto") == "auto"
    assert [r.getMessage() for r in caplog.records if "flashvid decoder:" in r.getMessage()] == [
        "flashvid decoder: pyav for .m4v/.mov/.mp4 files, torchcodec for the others (torchcodec loaded with system "
        "FFmpeg)"]
    for suffix, reader in ((".mp4", PyAVReader), (".avi", TorchCodecReader)):
        path, n, _ = numbered[(suffix, "15")]
        auto = open_video(path)
        try:
            assert type(auto) is reader
            assert frame_numbers(auto.frames_at([0, n // 2, n - 1])) == [0, n // 2, n - 1]
        finally:
            auto.close()
    assert type(open_video(numbered[(".mp4", "15")][0], "torchcodec")) is TorchCodecReader  # a forced choice holds


def test_every_real_clip_decodes_into_a_clip(realclips):
    """Real-world files (mpeg4 AVI with packed B-frames, h264 up to 1080p, 29.97/29.75 fps, odd names) all decode."""
    files = list_videos(realclips)
    assert len(files) >= 20
    ds = VideoClipDataset([VideoSample(f, 0) for f in files], ClipSampling(num_frames=8, sampling_rate=4),
                          clip_mode="center", decoder="auto")
    for i, f in enumerate(files):
        item = ds[i]
        assert isinstance(item, dict), f"{f}: {item}"
        video = item["video"]
        assert video.dtype == torch.uint8 and video.shape[:2] == (8, 3), f
        info = open_video(f).info
        assert video.shape[2:] == (info.height, info.width), f
        assert video.float().std() > 1.0, f"{f}: a flat clip means a failed decode"


@needs_torchcodec
def test_decoders_agree_on_real_clips(realclips):
    """Same frames from both readers on UCF101's Xvid AVIs: packed B-frames make their timestamps run backwards,
    and PyAV used to hand out a neighbouring frame twice there. (UCF101 files only: each seek decodes from a
    keyframe; the synthetic mp4/avi parity test covers the other codecs.)"""
    files = [f for f in list_videos(realclips) if os.path.basename(f).startswith("v_") and f.endswith(".avi")]
    assert files
    for f in files:
        a, b = TorchCodecReader(f), PyAVReader(f)
        try:
            assert a.info.num_frames == b.info.num_frames and a.info.fps == pytest.approx(b.info.fps), f
            n = a.info.num_frames
            wanted = list(range(n // 2, min(n // 2 + 12, n))) + [n - 1, n + 3]
            diff = (a.frames_at(wanted).float() - b.frames_at(wanted).float()).abs().mean(dim=(1, 2, 3))
        finally:
            a.close()
            b.close()
        assert diff.max() < 2.0, f"{f}: per-frame mean abs difference {diff.tolist()}"


@pytest.fixture(scope="module")
def tall(tmp_path_factory) -> Path:
    """A tall 1154x2050 (w x h) H.264 file of 4 frames of smooth waves (periods of 18-30 pixels once reduced): far
    larger than a 37-pixel short side needs."""
    h, w = 2050, 1154
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    frames = np.stack([np.stack([127 + 100 * np.sin((x + 40 * i) / 90), 127 + 100 * np.cos(y / 120),
                                 127 + 100 * np.sin((x + y) / 150)], axis=-1) for i in range(4)]).astype(np.uint8)
    path = tmp_path_factory.mktemp("tall") / "tall.mp4"
    write_video(path, frames, 15)
    return path


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = (a.float() - b.float()).pow(2).mean().item()
    return 10 * np.log10(255**2 / max(mse, 1e-9))


def test_large_frames_are_scaled_down_while_decoding(tall, decoder) -> None:
    """Both readers hand out frames already at the asked short side (the size ``resize_short_side`` makes), close
    to a resize of the full decode; the dataset asks for it when the source is over REDUCE_RATIO times what the
    transform needs, and the clip matches the full decode's through the same transform."""
    from torchvision.transforms.v2 import functional as TF

    from flashvid.data.decoding import REDUCE_RATIO, decode_short_side
    from flashvid.data.transforms import ShortSideCenterCrop, resize_short_side

    reader = open_video(tall, decoder)
    try:
        info = reader.info
        full = reader.frames_at([0, 3])
        small = reader.frames_at([0, 3], short_side=37)
        again = reader.frames_at([1], short_side=None)  # full size again on request
    finally:
        reader.close()
    assert full.shape == (2, 3, 2050, 1154) and again.shape == (1, 3, 2050, 1154)
    reference = resize_short_side(full, 37)
    assert small.shape == reference.shape == (2, 3, 66, 37)
    assert _psnr(small, reference) > 30, _psnr(small, reference)
    assert _psnr(small, TF.resize(full, [66, 37], antialias=True)) > 30

    assert decode_short_side(info, 4, 37) == 37 and 1154 > REDUCE_RATIO * 37
    assert decode_short_side(info, 4, 256) is None  # a normal-size source for a 256 short side: untouched
    transform = ShortSideCenterCrop(32, 37)
    ds = VideoClipDataset([VideoSample(str(tall), 0)], ClipSampling(4, 1, target_fps=None), transform, "center",
                          decoder=decoder)
    clip = ds[0]["video"]
    assert clip.shape == (4, 3, 32, 32)
    reader = open_video(tall, decoder)
    try:
        # the centre crop lands within half a pixel of the full decode's (whole pixels at either scale)
        assert _psnr(clip, transform(reader.frames_at([0, 1, 2, 3]))) > 25
    finally:
        reader.close()
