"""``flashvid prepare`` on real encoded files: layout, labels and counts kept for folders, list files and UCF101;
output short side and keyframe interval read back with PyAV; resumable (unchanged files skipped, a kill -9
mid-run continued, a changed source re-converted); unreadable files listed and skipped; small short-GOP files kept
as they are."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import signal
import time
from collections import Counter
from multiprocessing import get_context
from pathlib import Path

import av
import numpy as np
import pytest

from flashvid.cli import main
from flashvid.data import VideoClassificationData
from flashvid.data.decoding import keyframe_indices, open_video
from flashvid.data.demo import write_video
from flashvid.data.prepare import MANIFEST, TMP_MARK, prepare
from flashvid.data.video_file import open_container

REPO = Path(__file__).resolve().parents[1]
SHORT, KEY_S, FPS = 32, 0.2, 15  # demo videos are 64x80 at 15 fps: output 32x40, a keyframe every 3 frames


@pytest.fixture()
def data(demo_root: Path, tmp_path: Path) -> Path:
    """A private copy of the demo folders (tests change files in it)."""
    root = tmp_path / "src"
    for split in ("train", "val", "test"):
        shutil.copytree(demo_root / split, root / split)
    return root


def _videos(folder: Path) -> list[str]:
    from flashvid.data.sources import list_videos

    return list_videos(folder)


def _by_class(folder: Path) -> Counter:
    return Counter(Path(p).parent.name for p in _videos(folder))


def _stem_labels(dm: VideoClassificationData, split: str) -> dict[str, str]:
    return {Path(s.path).name.split(".")[0]: dm.labels[s.label] for s in dm.samples[split]}


def test_prepare_folders_keeps_layout_labels_and_converts_only_what_changed(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "prepared"
    folders = {f"{s}_folder": data / s for s in ("train", "val", "test")}
    report = prepare(out, **folders, short_side=SHORT, keyframe_interval=KEY_S, workers=2, progress=False)
    total = sum(len(_videos(data / s)) for s in ("train", "val", "test"))
    assert report.total == total and report.converted == total and not report.failed
    for split in ("train", "val", "test"):
        assert _by_class(out / split) == _by_class(data / split)
    assert report.data_options == f"data.train_folder={out}/train data.val_folder={out}/val data.test_folder={out}/test"

    # the copy trains with the same classes, and every file keeps its label
    src = VideoClassificationData.from_folders(**folders)
    dst = VideoClassificationData.from_folders(out / "train", out / "val", out / "test")
    assert dst.labels == src.labels
    for split in ("train", "val", "test"):
        assert _stem_labels(dst, split) == _stem_labels(src, split)

    # requested short side and keyframe interval, no audio, same frame count, read back with PyAV
    for path in _videos(out / "train"):
        with av.open(path) as c:
            v = c.streams.video[0]
            assert min(v.codec_context.width, v.codec_context.height) == SHORT
            assert not c.streams.audio and v.codec_context.name == "h264"
        keys = keyframe_indices(path)
        assert len(keys) >= 2 and set(np.diff(keys)) == {round(FPS * KEY_S)}
    reader = open_video(_videos(out / "train")[0], "pyav")
    assert reader.info.num_frames == 16 and reader.frames_at([0, 15]).shape == (2, 3, 32, 40)
    reader.close()

    # a second run converts nothing
    again = prepare(out, **folders, short_side=SHORT, keyframe_interval=KEY_S, workers=2, progress=False)
    assert again.converted == 0 and again.kept == 0 and again.unchanged == total

    # a changed source is converted again, alone; other settings convert everything again
    changed = Path(_videos(data / "train")[0])
    write_video(changed, np.full((20, 64, 80, 3), 128, np.uint8), FPS)
    third = prepare(out, **folders, short_side=SHORT, keyframe_interval=KEY_S, workers=1, progress=False)
    assert third.converted == 1 and third.unchanged == total - 1
    rel = changed.relative_to(data)
    assert open_video(out / rel.with_suffix(".mp4"), "pyav").info.num_frames == 20
    fourth = prepare(out, **folders, short_side=SHORT, keyframe_interval=0.4, workers=2, progress=False)
    assert fourth.converted == total


def test_prepare_copies_an_unlabelled_predict_folder_beside_the_class_folders(data: Path, tmp_path: Path) -> None:
    """``predict_folder`` (files of no class) is mirrored under ``predict/`` (was a KeyError traceback)."""
    loose = tmp_path / "loose"
    shutil.copytree(data / "test", loose)  # any layout: class folders are just subfolders here
    report = prepare(tmp_path / "p", train_folder=data / "train", predict_folder=loose, short_side=SHORT,
                     progress=False, workers=1)
    assert not report.failed and report.total == len(_videos(data / "train")) + len(_videos(loose))
    copied = sorted(Path(p).relative_to(tmp_path / "p" / "predict").with_suffix("").as_posix()
                    for p in _videos(tmp_path / "p" / "predict"))
    assert copied == sorted(Path(p).relative_to(loose).with_suffix("").as_posix() for p in _videos(loose))
    assert "predict" not in report.data_options


def test_small_short_gop_files_are_kept_as_they_are(data: Path, tmp_path: Path) -> None:
    """Short side already <= the target: the 12-frame-GOP AVIs are hard-linked, the 1-keyframe MP4s re-encoded."""
    report = prepare(tmp_path / "p", train_folder=data / "train", short_side=64, progress=False, workers=1)
    kept = [f for f in report.files if f["action"] == "kept"]
    conv = [f for f in report.files if f["action"] == "converted"]
    assert kept and conv and report.kept + report.converted == report.total
    assert all(f["src"].endswith(".avi") for f in kept) and all(f["src"].endswith(".mp4") for f in conv)
    for f in kept:
        assert os.path.samefile(f["src"], tmp_path / "p" / f["dst"])  # a link, not a re-encode
    assert "kept as they were" in report.format_text()


def test_unreadable_files_are_listed_and_skipped(data: Path, tmp_path: Path) -> None:
    bad = data / "train" / "left"
    (bad / "empty.mp4").write_bytes(b"")
    (bad / "notes.mp4").write_text("not a video")
    report = prepare(tmp_path / "p", train_folder=data / "train", short_side=SHORT, progress=False, workers=2)
    failed = {Path(f["path"]).name: f["reason"] for f in report.failed}
    assert set(failed) == {"empty.mp4", "notes.mp4"} and "empty file" in failed["empty.mp4"]
    assert report.converted == report.total - 2
    assert not (tmp_path / "p" / "train" / "left" / "notes.mp4").exists()
    text = report.format_text()
    assert "unreadable files (2)" in text and "notes.mp4" in text
    with pytest.raises(ValueError, match="inside the source folder"):  # its copies would become source videos
        prepare(data / "train" / "copy", train_folder=data / "train", progress=False)



def test_pool_workers_are_not_forked_from_the_calling_process(data: Path, tmp_path: Path) -> None:
    """A process that has trained holds OpenMP and decoder threads, and a fork copies their locks held: a worker
    forked from it crashed in libgomp on the GPU machine. The workers come from a clean server process instead, so
    an at-fork hook of this process never runs in them."""
    marks = tmp_path / "forked"
    marks.mkdir()
    armed = [True]  # a hook cannot be unregistered: it stays quiet in the session's later forks
    os.register_at_fork(after_in_child=lambda: armed[0] and (marks / str(os.getpid())).touch())
    try:
        report = prepare(tmp_path / "p", train_folder=data / "train", short_side=SHORT, progress=False, workers=2)
    finally:
        armed[0] = False
    assert report.converted == report.total > 0 and not report.failed
    assert not list(marks.iterdir()), "prepare's pool workers were forked from the calling process"

N_KILL = 6


def test_killed_run_continues(tmp_path: Path) -> None:
    """kill -9 mid-run (a real child process, forked so it needs no fresh imports); the next run converts only
    what is missing and leaves no temporary files."""
    src = tmp_path / "src"
    rng = np.random.default_rng(0)
    for i in range(N_KILL):
        (src / f"c{i % 2}").mkdir(parents=True, exist_ok=True)
        write_video(src / f"c{i % 2}" / f"v{i}.mp4", rng.integers(0, 255, (40, 96, 128, 3), dtype=np.uint8), 30)
    out = tmp_path / "out"
    proc = get_context("fork").Process(target=prepare, args=(out,), kwargs=dict(
        train_folder=src, short_side=64, keyframe_interval=0.5, max_fps=None, workers=1, progress=False))
    proc.start()
    deadline = time.monotonic() + 120
    done = 0
    while time.monotonic() < deadline and proc.is_alive():
        try:
            done = len(json.loads((out / MANIFEST).read_text())["files"])
        except (OSError, ValueError, KeyError):
            done = 0
        if done >= 1:
            break
        time.sleep(0.02)
    assert proc.is_alive(), f"the child ended (exit {proc.exitcode}) before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    assert 1 <= done < N_KILL
    report = prepare(out, train_folder=src, short_side=64, keyframe_interval=0.5, max_fps=None, workers=2,
                     progress=False)
    assert report.unchanged >= 1 and report.unchanged + report.converted == N_KILL
    assert not [p for p in out.rglob("*") if TMP_MARK in p.name]
    assert len(_videos(out / "train")) == N_KILL
    for p in _videos(out / "train"):
        assert open_video(p, "pyav").info.num_frames == 40


def test_list_files_and_ucf101_layouts(data: Path, tmp_path: Path) -> None:
    """csv through the command line, UCF101 through the library: rewritten lists, same labels and counts."""
    train = _videos(data / "train")
    rows = "".join(f"{os.path.relpath(p, data)},{Path(p).parent.name}\n" for p in train)
    (data / "train.csv").write_text("path,label\n" + rows)
    out = tmp_path / "csv_out"
    code = main(["prepare", "data=csv", f"data.train_file={data / 'train.csv'}", f"output={out}", "model=tiny",
                 f"prepare.short_side={SHORT}", "prepare.workers=1", "prepare.progress=false",
                 f"hydra.run.dir={tmp_path / 'run'}", "hydra/job_logging=none", "hydra/hydra_logging=none"])
    assert code == 0
    src = VideoClassificationData.from_csv(data / "train.csv")
    dst = VideoClassificationData.from_csv(out / "train.csv")
    assert dst.labels == src.labels and _stem_labels(dst, "train") == _stem_labels(src, "train")

    ann = tmp_path / "ann"
    ann.mkdir()
    classes = sorted(p.name for p in (data / "train").iterdir())
    (ann / "classInd.txt").write_text("".join(f"{i + 1} {c}\n" for i, c in enumerate(classes)))
    rel = [os.path.relpath(p, data / "train") for p in train]
    (ann / "trainlist01.txt").write_text("".join(f"{r} {classes.index(r.split('/')[0]) + 1}\n" for r in rel[::2]))
    (ann / "testlist01.txt").write_text("".join(f"{r}\n" for r in rel[1::2]))
    report = prepare(tmp_path / "ucf", root=data / "train", annotations_dir=ann, short_side=SHORT, progress=False,
                     workers=2)
    assert report.data_options.startswith("data=ucf101 ")
    src = VideoClassificationData.from_ucf101(data / "train", ann, val_split=None)
    dst = VideoClassificationData.from_ucf101(tmp_path / "ucf" / "videos", tmp_path / "ucf" / "annotations",
                                              val_split=None)
    assert dst.labels == src.labels
    for split in ("train", "test"):
        assert _stem_labels(dst, split) == _stem_labels(src, split)


def project_csv_data(**kwargs) -> VideoClassificationData:
    """A project's own data function over list files (data._target_=test_prepare.project_csv_data)."""
    return VideoClassificationData.from_csv(**kwargs)


def test_prepare_reads_the_source_keys_whatever_the_target_is_named(data: Path, tmp_path: Path) -> None:
    """The source is chosen by the keys set (data.train_file here), not by the _target_'s name ending in from_csv:
    a project's own list-file data function prepares too."""
    rows = "".join(f"{os.path.relpath(p, data)},{Path(p).parent.name}\n" for p in _videos(data / "train")[:2])
    (data / "two.csv").write_text(rows)
    out = tmp_path / "out"
    code = main(["prepare", "data=csv", "data._target_=test_prepare.project_csv_data",
                 f"data.train_file={data / 'two.csv'}", f"output={out}", "model=tiny", f"prepare.short_side={SHORT}",
                 "prepare.workers=1", "prepare.progress=false", f"hydra.run.dir={tmp_path / 'run'}",
                 "hydra/job_logging=none", "hydra/hydra_logging=none"])
    assert code == 0
    assert len(VideoClassificationData.from_csv(out / "train.csv").samples["train"]) == 2


def test_doctor_suggests_prepare_for_long_gop_files(data: Path, tmp_path: Path) -> None:
    """The demo MP4s hold one keyframe in 16 frames (~1 s): fine. 480x320 files with one keyframe in 10 s (a lead-in
    of up to 23 Mpx before a clip) get the hint; their prepared copy does not."""
    from flashvid.doctor import diagnose

    long = tmp_path / "long"
    frames = np.full((150, 320, 480, 3), 40, np.uint8)
    for i in range(len(frames)):  # a bar sweeping right: cheap to encode, a different picture every frame
        frames[i, :, : (i + 1) * 480 // len(frames)] = 220
    for c in ("a", "b"):
        (long / c).mkdir(parents=True)
        write_video(long / c / "v.mp4", frames, 15)
    dm = VideoClassificationData.from_folders(long)
    report = diagnose({"train": dm.samples["train"]}, dm.labels, progress=False)
    assert [f.keyframe_interval for f in report.files] == [150, 150]
    assert any("flashvid prepare" in w for w in report.warnings)
    prepare(tmp_path / "p", train_folder=long, short_side=32, progress=False, workers=1)
    dm = VideoClassificationData.from_folders(tmp_path / "p" / "train")
    report = diagnose({"train": dm.samples["train"]}, dm.labels, progress=False)
    assert not any("flashvid prepare" in w for w in report.warnings)


def test_cli_without_output_or_with_bad_settings_fails_in_one_line(data: Path, tmp_path: Path, capsys) -> None:
    common = [f"data.train_folder={data / 'train'}", f"hydra.run.dir={tmp_path / 'run'}", "hydra/job_logging=none",
              "hydra/hydra_logging=none"]
    assert main(["prepare", *common]) == 2
    assert main(["prepare", *common, f"output={tmp_path / 'o'}", "prepare.crf=99"]) == 2
    err = capsys.readouterr().err
    assert "prepare needs output=DIR" in err and "crf must be in 0..51" in err and "Traceback" not in err


def _gray_ramp(n: int, h: int = 48, w: int = 64) -> np.ndarray:
    """Frame i is flat gray 40 + 2i: a frame's level says which moment of the video it shows."""
    return np.repeat((40 + 2 * np.arange(n, dtype=np.uint8))[:, None, None, None], h * w * 3).reshape(n, h, w, 3)


def test_frame_rate_cap_comes_from_the_sampler_and_clips_show_the_same_moments(tmp_path: Path) -> None:
    """Defaults: a 30 fps long-GOP source becomes a copy at twice the rate the clips read (16 frames at stride 4 of
    30 fps read 7.5/s: 15 fps), and the copy's clip shows the same moments as the source's, because strides are
    in time (``target_fps``), not in frames. A small short-GOP AVI is kept at its own rate."""
    from flashvid.data import ClipSampling, VideoClipDataset, VideoSample
    from flashvid.data.prepare import default_max_fps, settings_for

    src = tmp_path / "src" / "a"
    src.mkdir(parents=True)
    write_video(src / "ramp.mp4", _gray_ramp(96), fps=30)  # one keyframe: long GOP, re-encoded
    write_video(src / "small.avi", _gray_ramp(96), fps=30)  # 12-frame GOPs, 64x48: kept
    sampling = ClipSampling(16, 4, target_fps=30.0)
    report = prepare(tmp_path / "p", train_folder=tmp_path / "src", short_side=48, progress=False, workers=1)
    by_name = {Path(f["src"]).name: f for f in report.files}
    assert by_name["small.avi"]["action"] == "kept"
    copy = tmp_path / "p" / by_name["ramp.mp4"]["dst"]
    with av.open(str(copy)) as c:
        assert float(c.streams.video[0].average_rate) == default_max_fps(sampling) < 30
    clips = {}
    for name, path in (("source", src / "ramp.mp4"), ("copy", copy)):
        ds = VideoClipDataset([VideoSample(str(path), 0)], sampling, None, "center", decoder="pyav")
        clips[name] = ds[(0, 0)]["video"].float().mean(dim=(1, 2, 3))
    # one source frame (1/30 s) apart at most: 2 gray levels per frame, plus compression noise
    assert (clips["copy"] - clips["source"]).abs().max() <= 4, (clips["copy"], clips["source"])
    assert clips["copy"].diff().min() > 0  # a real ramp, not a frozen frame

    # the cap follows the model's sampler; a stride counted in the file's own frames keeps the rate
    x3d = settings_for({}, "x3d_m")
    from flashvid.models import get_backbone_spec

    spec = get_backbone_spec("x3d_m").data
    assert x3d.max_fps == pytest.approx(2 * spec.target_fps / spec.sampling_rate)
    assert settings_for({"sampling_rate": 2}, "x3d_m").max_fps == pytest.approx(spec.target_fps)
    assert settings_for({"target_fps": 0}, "x3d_m").max_fps is None  # 0: the stride counts the file's frames
    assert settings_for({}, "x3d_m", max_fps=None).max_fps is None


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="the ffmpeg CLI writes the rotation")
def test_rotated_phone_video_is_copied_upright(tmp_path: Path) -> None:
    """A display-matrix rotation (phone videos) is applied to the copy's pixels: the copy has no matrix left and
    shows what the readers show for the source, downscaled."""
    import subprocess

    import torch
    import torch.nn.functional as F

    frames = np.zeros((20, 64, 128, 3), np.uint8)
    frames[:, :, :32] = 230  # a bright band on the left edge, as encoded
    frames[:, :16, :, 1] = 120  # and a green band along the top
    plain, rotated = tmp_path / "plain.mp4", tmp_path / "src" / "a" / "rotated.mp4"
    rotated.parent.mkdir(parents=True)
    write_video(plain, frames, fps=15)
    subprocess.run([shutil.which("ffmpeg"), "-v", "error", "-y", "-i", str(plain), "-c", "copy",
                    "-metadata:s:v:0", "rotate=90", str(rotated)], check=True)
    report = prepare(tmp_path / "p", train_folder=tmp_path / "src", short_side=32, progress=False, workers=1)
    (entry,) = report.files
    copy = tmp_path / "p" / entry["dst"]
    src_reader, copy_reader = open_video(rotated, "pyav"), open_video(copy, "pyav")
    try:
        upright = src_reader.frames_at([5]).float()
        got = copy_reader.frames_at([5]).float()
    finally:
        src_reader.close()
        copy_reader.close()
    assert upright.shape[-2:] == (128, 64) and got.shape[-2:] == (64, 32)  # portrait, short side 32
    with av.open(str(copy)) as c:
        assert not (getattr(next(c.decode(video=0)), "rotation", 0) or 0)
    expected = F.interpolate(upright, size=got.shape[-2:], mode="area")
    assert (got - expected).abs().mean() < 8, (got - expected).abs().mean()
    assert (got - torch.flip(expected, dims=(-2, -1))).abs().mean() > 40  # the other way round would not match


def _frame_counts(path: Path) -> tuple[int, int, int]:
    """(frames, B-frames, frames decoded when non-reference frames are skipped)."""
    with av.open(str(path)) as c:
        types = [int(f.pict_type) for f in c.decode(video=0)]
    with av.open(str(path)) as c:
        c.streams.video[0].codec_context.skip_frame = "NONREF"
        refs = sum(1 for _ in c.decode(video=0))
    return len(types), types.count(int(av.video.frame.PictureType.B)), refs


def test_copies_have_no_reference_b_frames(tmp_path: Path) -> None:
    """x264's default B-pyramid makes some B-frames references; the copy's are not, so a clip reader can skip every
    B-frame a clip does not show (``prepare.x264_params``)."""
    rng = np.random.default_rng(0)
    tex = np.repeat(np.repeat(rng.integers(0, 255, (18, 50, 3), np.uint8), 8, 0), 8, 1)
    # a slow pan, a pixel every third frame: x264 picks runs of B-frames, and its pyramid makes the middle ones
    # references (at a pixel a frame it picked single B-frames, which no pyramid makes references)
    frames = np.stack([np.roll(tex, i // 3, axis=1)[:, :256] for i in range(90)])
    (tmp_path / "src" / "a").mkdir(parents=True)
    write_video(tmp_path / "src" / "a" / "pan.mp4", frames, 30)
    counts = {}
    for params in ("b-pyramid=none", ""):  # the default, and x264's own
        out = tmp_path / f"copy{params}"
        prepare(out, train_folder=tmp_path / "src", short_side=128, max_fps=None, x264_params=params, workers=1,
                progress=False)
        counts[params] = _frame_counts(next(out.rglob("*.mp4")))
    frames_, b_frames, refs = counts["b-pyramid=none"]
    assert b_frames > 0 and refs == frames_ - b_frames  # every B-frame skippable
    frames_, b_frames, refs = counts[""]
    assert refs > frames_ - b_frames  # without the option some B-frames are references


def test_fast_motion_does_not_turn_a_copys_b_frames_into_references(tmp_path: Path) -> None:
    """x264's adaptive B-frames (b-adapt) become P-frames, each a reference that every clip through it decodes, where
    the picture moves fast: the copies of 60 fps footage had 57 B-frames in 150 and a 16-frame clip decoded 29
    frames (23 for 30 fps footage). The copy's run of B-frames is fixed (``prepare.x264_params``)."""
    rng = np.random.default_rng(0)
    tex = np.repeat(np.repeat(rng.integers(0, 255, (18, 80, 3), np.uint8), 8, 0), 8, 1)
    frames = np.stack([np.roll(tex, 4 * i, axis=1)[:, :256] for i in range(90)])  # 4 px a frame, 8 in the copy
    (tmp_path / "src" / "a").mkdir(parents=True)
    write_video(tmp_path / "src" / "a" / "fast.mp4", frames, 30)
    counts = {}
    for params in (None, "b-pyramid=none"):  # the default, and the same without the fixed run
        out = tmp_path / f"copy{params}"
        prepare(out, train_folder=tmp_path / "src", short_side=128, max_fps=15, workers=1, progress=False,
                **({"x264_params": params} if params else {}))
        counts[params] = _frame_counts(next(out.rglob("*.mp4")))
    frames_, b_frames, refs = counts[None]
    assert frames_ == 45 and b_frames >= 30 and refs == frames_ - b_frames, counts
    assert counts["b-pyramid=none"][1] < 10, counts  # adaptive: x264 picked P-frames here


def test_x264_chooses_the_copys_frame_types_not_the_source(tmp_path: Path) -> None:
    """FFmpeg's libx264 encodes a frame as the type it carries, and a decoded frame carries the source's: a source of
    P-frames only (60 fps footage came out so, x264 finding B-frames not worth it there) made a copy of P-frames only,
    every frame a reference, so a clip decoded every frame from the keyframe on. The copy's types are x264's own."""
    from badvideos import _lavfi

    (tmp_path / "src" / "a").mkdir(parents=True)
    src = _lavfi(tmp_path / "src" / "a" / "p_only.mp4", "testsrc=s=320x240:r=30:d=3",
                 "-c:v", "libx264", "-preset", "veryfast", "-bf", "0", "-g", "300", "-pix_fmt", "yuv420p")
    assert _frame_counts(src)[1] == 0  # no B-frame in the source
    prepare(tmp_path / "out", train_folder=tmp_path / "src", short_side=128, max_fps=15, workers=1, progress=False)
    frames_, b_frames, refs = _frame_counts(next((tmp_path / "out").rglob("*.mp4")))
    assert frames_ == 45 and b_frames >= frames_ // 3 and refs == frames_ - b_frames, (frames_, b_frames, refs)


def _snapshot(folder: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_an_output_that_is_holds_or_lies_inside_a_source_is_refused_before_writing(data: Path, tmp_path: Path,
                                                                                    capsys) -> None:
    """`output=D` with D/train and D/val once replaced every source video in place, and `data=csv output=<root>`
    the source train.csv: each overlap (a folder, a list file, a listed video's folder) is refused in one line,
    and no source changes; a link inside the output leading into a source folder is refused too."""
    train = _videos(data / "train")
    (data / "train.csv").write_text("path,label\n" + "".join(f"{os.path.relpath(p, data)},{Path(p).parent.name}\n"
                                                              for p in train))
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "flat.csv").write_text(f"{train[0]},a\n{train[1]},b\n")
    before = _snapshot(data)
    common = ["model=tiny", f"prepare.short_side={SHORT}", "prepare.workers=1", "prepare.progress=false",
              f"hydra.run.dir={tmp_path / 'run'}", "hydra/job_logging=none", "hydra/hydra_logging=none"]
    runs = {  # output -> the data options, and what the message names
        "holds the source folder": [f"data.train_folder={data / 'train'}", f"data.val_folder={data / 'val'}",
                                    f"output={data}"],
        "is the source folder": [f"data.train_folder={data / 'train'}", f"output={data / 'train'}"],
        "holds the source file": ["data=csv", f"data.train_file={data / 'train.csv'}", f"data.root={data}",
                                  f"output={data}"],
        "is inside the source folder": ["data=csv", f"data.train_file={lists / 'flat.csv'}",
                                        f"output={Path(train[0]).parent / 'copy'}"],
    }
    for relation, options in runs.items():
        assert main(["prepare", *options, *common]) == 2, relation
        err = capsys.readouterr().err.strip()
        assert relation in err and "choose an output folder outside the data" in err, err
        assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert _snapshot(data) == before and not (data / MANIFEST).exists()

    out = tmp_path / "linked"  # its train/ is a link to the source split folder: the copies would land there
    out.mkdir()
    (out / "train").symlink_to(data / "train")
    with pytest.raises(ValueError, match="leads into the source folder"):
        prepare(out, train_folder=data / "train", short_side=SHORT, progress=False, workers=1)
    assert _snapshot(data) == before and not (out / MANIFEST).exists()


def test_a_second_prepare_into_a_busy_output_is_refused_at_once(tmp_path: Path, capsys) -> None:
    """Two runs into one output: the second once deleted the first's temporary files and the first then reported
    good files as unreadable. The output's OS lock (released by the kernel however the holder ends) refuses the
    second at once, in one line naming the holder, before it touches anything."""
    from flashvid.rundir import LOCK_FILE, RunDirectoryError

    src = tmp_path / "src"
    rng = np.random.default_rng(0)
    n = 8
    for i in range(n):
        (src / f"c{i % 2}").mkdir(parents=True, exist_ok=True)
        write_video(src / f"c{i % 2}" / f"v{i}.mp4", rng.integers(0, 255, (40, 96, 128, 3), dtype=np.uint8), 30)
    out = tmp_path / "out"
    options = dict(train_folder=src, short_side=64, keyframe_interval=0.5, max_fps=None, progress=False)
    first = get_context("fork").Process(target=prepare, args=(out,), kwargs=dict(options, workers=1))
    first.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and first.is_alive():
        try:
            if (out / LOCK_FILE).read_text().strip() == str(first.pid):
                break
        except OSError:
            pass
        time.sleep(0.01)
    with pytest.raises(RunDirectoryError, match=f"in use by another flashvid prepare \\(pid {first.pid}\\)"):
        prepare(out, **options, workers=1)
    first.join(60)
    assert first.exitcode == 0
    again = prepare(out, **options, workers=1)  # the first run's copies are all there and good
    assert again.unchanged == n and not again.failed

    from flashvid.data.prepare import PREPARE_BUSY, PREPARE_UNWRITABLE
    from flashvid.rundir import locked_dir

    tmp = out / "train" / "c0" / f"v0.mp4{TMP_MARK}-1.mp4"  # a running prepare's temporary file
    tmp.write_bytes(b"partial")
    with locked_dir(out, PREPARE_BUSY, PREPARE_UNWRITABLE):  # held as the first run holds it
        code = main(["prepare", f"data.train_folder={src}", f"output={out}", "prepare.progress=false",
                     f"hydra.run.dir={tmp_path / 'run'}", "hydra/job_logging=none", "hydra/hydra_logging=none"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and f"(pid {os.getpid()})" in err and "output=DIR" in err, err
    assert tmp.read_bytes() == b"partial"


def _low_bitrate_long_gop(path: Path, n: int = 90, fps: int = 30) -> None:
    """A web-style source: a textured pan, crf 38, one keyframe in 300 frames (what the copy's 1 s keyframes and
    fast-decode settings would outgrow at the default crf)."""
    rng = np.random.default_rng(0)
    tex = np.repeat(np.repeat(rng.integers(0, 255, (20, 60, 3), np.uint8), 8, 0), 8, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = 320, 160, "yuv420p"
        s.options = {"crf": "38", "preset": "medium", "x264-params": "keyint=300:min-keyint=300:scenecut=0"}
        for i in range(n):
            f = av.VideoFrame.from_ndarray(np.ascontiguousarray(np.roll(tex, 2 * i, axis=1)[:, :320]), format="rgb24")
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def test_a_copy_is_never_larger_than_its_source_unless_asked(tmp_path: Path) -> None:
    src = tmp_path / "src" / "a" / "web.mp4"
    _low_bitrate_long_gop(src)
    sizes = {}
    for name, ratio in (("default", 1.0), ("asked", None)):
        out = tmp_path / name
        report = prepare(out, train_folder=tmp_path / "src", short_side=128, max_fps=None, max_size_ratio=ratio,
                         workers=1, progress=False)
        assert report.converted == 1 and not report.failed
        copy = next(out.rglob("*.mp4"))
        sizes[name] = copy.stat().st_size
        assert open_video(str(copy), "pyav").info.num_frames == 90  # every frame kept, capped or not
    assert sizes["asked"] > src.stat().st_size  # crf alone outgrows this source ...
    assert sizes["default"] <= src.stat().st_size  # ... the default cap does not


def test_grain_is_held_to_the_bits_per_pixel_cap(tmp_path: Path) -> None:
    """A noisy, high-bitrate source: at crf 22 its copy keeps the noise (~1.6 bits per pixel here), and every
    training clip pays to decode those bits; the default cap holds it near 0.5 and says so, null lifts it."""
    from badvideos import _lavfi

    (tmp_path / "src" / "a").mkdir(parents=True)
    src = _lavfi(tmp_path / "src" / "a" / "grain.mp4", "testsrc=s=320x180:r=30:d=2,noise=alls=60:allf=t",
                 "-c:v", "libx264", "-preset", "ultrafast", "-crf", "8", "-pix_fmt", "yuv420p")
    bits = {}
    for name, cap in (("default", 0.5), ("asked", None)):
        report = prepare(tmp_path / name, train_folder=tmp_path / "src", short_side=128, max_fps=15,
                         max_bits_per_pixel=cap, workers=1, progress=False)
        assert report.converted == 1 and not report.failed
        out = report.files[0]["out"]
        bits[name] = out["bytes"] * 8 / (out["width"] * out["height"] * out["frames"])
        assert out["held_to_bits_per_pixel"] == (cap is not None)
        assert ("held to prepare.max_bits_per_pixel" in report.format_text()) == (cap is not None)
    assert bits["asked"] > 1.0 and bits["default"] <= 0.5 * 1.15, bits
    assert src.stat().st_size > 2 * (tmp_path / "default" / "train" / "a" / "grain.mp4").stat().st_size


def test_a_script_without_a_main_guard_gets_the_fix_not_a_broken_pool(data: Path, tmp_path: Path) -> None:
    """prepare's workers start from a fork server, which imports the calling script again: a script that calls
    prepare() at its top level is told what to change, in one line."""
    import subprocess
    import sys

    script = tmp_path / "noguard.py"
    script.write_text("from flashvid.data.prepare import prepare\n"
                      f"prepare({str(tmp_path / 'out')!r}, train_folder={str(data / 'train')!r}, workers=2, "
                      "progress=False)\n")
    res = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert res.returncode != 0
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("flashvid.data.prepare.PrepareWorkersDied:") and '__name__ == "__main__"' in last


def test_prepare_runs_without_importing_torch(data: Path, tmp_path: Path) -> None:
    """``flashvid prepare`` imported torch twice before its first file: the command, for the backbone's clip
    settings (now read from the registry's catalog), and the pool server, through the decoders (now PyAV, libx264
    and Pillow only) - ~10 s of a 20 s run on the GPU machine; a store's worker ran torch's JPEG encoder on a thread
    per core. None imports it now, for copies or stores, and the copies are sized as the registry sizes them."""
    import subprocess
    import sys

    from flashvid.data.prepare import settings_for
    from flashvid.models import get_backbone_spec

    out, store = tmp_path / "out", tmp_path / "one.fvframes"
    src = sorted((data / "train").rglob("*.mp4"))[0]
    script = tmp_path / "probe.py"
    script.write_text(
        "import sys\n"
        "from concurrent.futures import ProcessPoolExecutor\n"
        "from flashvid.cli import main\n"
        "from flashvid.data.prepare import PrepareSettings, _pool_context, _worker_start, convert_file\n"
        "if __name__ == '__main__':\n"
        f"    code = main(['prepare', 'data.train_folder={data / 'train'}', 'output={out}', 'model=videomae_base',\n"
        "                 'prepare.progress=false', 'prepare.workers=2', 'prepare.keep_max_gop=0',\n"
        f"                 'hydra.run.dir={tmp_path / 'run'}'])\n"
        "    with ProcessPoolExecutor(1, mp_context=_pool_context(), initializer=_worker_start) as pool:\n"
        f"        res = pool.submit(convert_file, '{src}', '{store}', 'keep',\n"
        "                          PrepareSettings(format='frames')).result()\n"
        "        worker = pool.submit(eval, \"'torch' in __import__('sys').modules\").result()\n"
        "    print('CODE', code, res['action'], 'TORCH', 'torch' in sys.modules, worker)\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    res = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300)
    assert "CODE 0 converted TORCH False False" in res.stdout, res.stdout + res.stderr
    manifest = json.loads((out / MANIFEST).read_text())
    assert {e["action"] for e in manifest["files"].values()} == {"converted"}
    get_backbone_spec("videomae_base")  # the registry loaded: settings_for reads it, not the catalog
    assert manifest["settings"] == settings_for({}, "videomae_base", keep_max_gop=0).key()
    assert store.is_file()


def _prepared_frames(path: Path, fmt: str) -> np.ndarray:
    """Every frame of a prepared copy (``fmt="video"``) or store (``"frames"``), decoded, as one array."""
    from flashvid.data.frame_store import FrameStoreReader

    if fmt == "frames":
        reader = FrameStoreReader(str(path))
        return reader.frames_at(list(range(reader.info.num_frames))).numpy()
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


@pytest.mark.parametrize("fmt", ["video", "frames"])
def test_the_cap_skips_dropped_b_frames_and_keeps_the_same_frames(tmp_path: Path, fmt: str) -> None:
    """A 30 fps x264 source with B-frames capped to 15 fps: the frames the cap drops that no other frame needs are
    not decoded (fewer source frames decoded), and the copy or store holds exactly the frames decoding every
    frame gives."""
    from badvideos import _lavfi

    from flashvid.data.prepare import PrepareSettings, convert_file

    src = _lavfi(tmp_path / "b.mp4", "testsrc=s=160x120:r=30:d=2,noise=alls=20:allf=t",
                 "-c:v", "libx264", "-preset", "veryfast", "-bf", "3", "-g", "60", "-pix_fmt", "yuv420p")
    settings = PrepareSettings(short_side=64, max_fps=15, format=fmt)
    outs = {}
    for skip in (True, False):
        dst = tmp_path / f"{fmt}_{skip}"
        res = convert_file(str(src), str(dst), str(tmp_path / f"kept_{skip}"), settings, skip_nonref=skip)
        assert res["action"] == "converted", res
        outs[skip] = (dst, res["out"])
    assert outs[False][1]["source_frames_decoded"] == 60
    assert 30 <= outs[True][1]["source_frames_decoded"] < 60
    assert outs[True][1]["frames"] == outs[False][1]["frames"] == 30

    assert np.array_equal(_prepared_frames(outs[True][0], fmt), _prepared_frames(outs[False][0], fmt))


def test_the_cap_skip_keeps_the_same_frames_on_real_footage(realclips: Path, tmp_path: Path) -> None:
    """Real files through the cap with and without the skip give the same copies frame for frame: a YouTube H.264
    file (B-frames, 30 fps) and UCF101's MPEG-4 AVIs (packed B-frames: there the skip gave other frames, so only
    H.264 skips)."""
    from flashvid.data.prepare import PrepareSettings, convert_file

    kinetics = sorted((realclips / "kinetics400_doranlyong").rglob("*.mp4"))[:1]
    ucf = sorted((realclips / "hmdb_ucf_fingerrec").rglob("v_*.avi"))
    files = [*kinetics, *[p for p in ucf if "ApplyEyeMakeup" in p.name or "Shotput" in p.name]]
    assert len(files) >= 3, files
    settings = PrepareSettings(short_side=96, max_fps=15, max_size_ratio=None)

    def frames(path: Path) -> list[np.ndarray]:
        with av.open(str(path)) as c:
            return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]

    skipped = 0
    for src in files:
        out = {}
        for skip in (True, False):
            res = convert_file(str(src), str(tmp_path / f"{skip}.mp4"), str(tmp_path / "kept"), settings,
                               skip_nonref=skip)
            assert res["action"] == "converted", (src, res)
            out[skip] = res["out"]["source_frames_decoded"]
        a, b = frames(tmp_path / "True.mp4"), frames(tmp_path / "False.mp4")
        assert len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True)), src
        skipped += out[False] - out[True]
    assert skipped > 0  # the H.264 files did skip


def test_a_frame_the_skip_cannot_place_decodes_everything_again(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """When a decoded frame's timestamp is not one the demux pass listed (no real file here does that: the pass is
    given a listing without the last packets, as a demuxer that disagreed with the decoder would give), prepare
    converts the file again decoding every frame: the same copy and store as without the skip, never other frames."""
    from badvideos import _lavfi

    prep = importlib.import_module("flashvid.data.prepare")  # the module (flashvid.data.prepare is also a function)

    src = _lavfi(tmp_path / "b.mp4", "testsrc=s=160x120:r=30:d=1,noise=alls=20:allf=t",
                 "-c:v", "libx264", "-preset", "veryfast", "-bf", "3", "-g", "30", "-pix_fmt", "yuv420p")
    with open_container(src) as container:
        listed = prep._display_ranks(prep._demux(container, container.streams.video[0]).pts)
    assert listed is not None
    short = dict(sorted(listed.items(), key=lambda kv: kv[1])[:20])  # the last 10 frames missing
    for fmt in ("video", "frames"):
        settings = prep.PrepareSettings(short_side=64, max_fps=15, format=fmt)
        plain = prep.convert_file(str(src), str(tmp_path / f"plain_{fmt}"), str(tmp_path / "k"), settings,
                                  skip_nonref=False)
        with monkeypatch.context() as m:
            m.setattr(prep, "_display_ranks", lambda pts: short)
            again = prep.convert_file(str(src), str(tmp_path / f"again_{fmt}"), str(tmp_path / "k"), settings)
        assert again["action"] == "converted", again
        assert again["out"]["source_frames_decoded"] == plain["out"]["source_frames_decoded"] == 30
        assert np.array_equal(_prepared_frames(tmp_path / f"again_{fmt}", fmt),
                              _prepared_frames(tmp_path / f"plain_{fmt}", fmt))
