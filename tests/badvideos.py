"""A corpus of bad and odd video inputs, written with real encoders (PyAV and the ffmpeg CLI).

``make_corpus(root)`` lays out a small class-folder dataset that mixes normal clips with every kind of broken or
unusual input the issue "a run never dies on one bad file" lists, and returns a :class:`Corpus` describing each
item and what flashvid must do with it (``ok``: decode and train normally; ``fail``: skipped and reported with a
reason). Everything is tiny, so the whole corpus is written in a few seconds.

Layout (``L`` = left, ``R`` = right motion; ``_gNN_`` are UCF101-style recording groups)::

    train/left/   4 good clips + odd-but-valid files + broken files
    train/right/  4 good clips + a few odd files
    train/empty/          an empty class folder
    train/broken_only/    a class folder with no readable video
    val/left/     2 good clips (one shares group _g01_ with train) + a byte-identical copy of a train file
    val/right/    2 good clips
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from flashvid.data.demo import render_motion, write_video

FFMPEG = shutil.which("ffmpeg")
SIZE = (32, 40)  # height, width of the normal clips
FRAMES = 16


@dataclass(frozen=True)
class Item:
    """One corpus entry: where it is, whether flashvid should decode it, and a substring of the expected reason."""

    name: str
    path: Path
    expect: str  # "ok" or "fail"
    reason: str = ""  # lower-case substring expected in the failure reason ("" = any reason)
    split: str = "train"
    label: str = "left"


@dataclass
class Corpus:
    root: Path
    items: dict[str, Item] = field(default_factory=dict)
    good: list[Path] = field(default_factory=list)

    @property
    def train(self) -> Path:
        return self.root / "train"

    @property
    def val(self) -> Path:
        return self.root / "val"

    def bad(self) -> list[Item]:
        return [i for i in self.items.values() if i.expect == "fail"]

    def odd(self) -> list[Item]:
        return [i for i in self.items.values() if i.expect == "ok"]

    def all_paths(self) -> list[Path]:
        return [*self.good, *(i.path for i in self.items.values())]


def _ffmpeg(*args: str) -> None:
    if FFMPEG is None:
        raise RuntimeError("the ffmpeg CLI is needed to build the bad-video corpus (apt-get install ffmpeg)")
    subprocess.run([FFMPEG, "-v", "error", "-y", *args], check=True)


def _lavfi(out: Path, source: str, *extra: str) -> Path:
    _ffmpeg("-f", "lavfi", "-i", source, *extra, str(out))
    return out


def _x264(*extra: str) -> list[str]:
    return ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", *extra]


def write_good(path: Path, motion: str, rng: np.random.Generator, num_frames: int = FRAMES,
               size: tuple[int, int] = SIZE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_video(path, render_motion(motion, num_frames, size[0], size[1], rng), fps=15)
    return path


def make_uhd(path: Path, num_frames: int = 6) -> Path:
    """A 3840x2160 H.264 clip (flat colour, so it encodes in a fraction of a second)."""
    return _lavfi(path, f"color=c=0x3366aa:s=3840x2160:r=30:d={num_frames / 30}", *_x264())


def make_long(path: Path, minutes: float = 20.0) -> Path:
    """A long (default 20 min, 36,000 frames) tiny clip: decoding one clip of it must not read the whole file."""
    return _lavfi(path, f"color=c=red:s=32x24:r=30:d={minutes * 60}", *_x264("-g", "300"))


def _pyav_frames(n: int, height: int, width: int, base: int = 40) -> list:
    """Frames with a bar growing left to right (frame i's mean brightness rises with i, so order can be checked)."""
    import av

    out = []
    for i in range(n):
        img = np.full((height, width, 3), base, np.uint8)
        img[:, : (i + 1) * width // n] = 220
        out.append(av.VideoFrame.from_ndarray(img, format="rgb24"))
    return out


def make_thumbnail_first(path: Path, num_frames: int = 12, size: tuple[int, int] = SIZE) -> Path:
    """An mp4 whose first (default) video stream is a 16x16 thumbnail track and whose second is the video."""
    import av

    with av.open(str(path), "w") as c:
        thumb = c.add_stream("libx264", rate=15, options={"preset": "ultrafast"})
        thumb.width = thumb.height = 16
        video = c.add_stream("libx264", rate=15, options={"preset": "ultrafast"})
        video.height, video.width = size
        for s in (thumb, video):
            s.pix_fmt = "yuv420p"
        thumbs, frames = _pyav_frames(num_frames, 16, 16, base=10), _pyav_frames(num_frames, *size)
        for small, big in zip(thumbs, frames, strict=True):
            c.mux(thumb.encode(small))
            c.mux(video.encode(big))
        c.mux(thumb.encode())
        c.mux(video.encode())
    return path


def make_frame_rate(path: Path, rate, num_frames: int = 12, size: tuple[int, int] = SIZE) -> Path:
    """An mp4 whose stream rate (and so its frame-rate header and timestamps) is ``rate``: 90000 (a time base
    written as a rate) or 1/1000 make absurd headers."""
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=rate, options={"preset": "ultrafast"})
        s.height, s.width = size
        s.pix_fmt = "yuv420p"
        for f in _pyav_frames(num_frames, *size):
            c.mux(s.encode(f))
        c.mux(s.encode())
    return path


def make_huge_frames(path: Path, side: int = 8192) -> Path:
    """A ~90 KB .mov holding one side x side frame (flat grey PNG): a decompression bomb for a clip."""
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream("png", rate=15)
        s.width = s.height = side
        s.pix_fmt = "gray"
        c.mux(s.encode(av.VideoFrame.from_ndarray(np.full((side, side), 90, np.uint8), format="gray")))
        c.mux(s.encode())
    return path


def make_backwards_timestamps(path: Path, num_frames: int = 12, size: tuple[int, int] = SIZE) -> Path:
    """Two MPEG-PS recordings joined byte for byte (``cat a.mpg b.mpg``): the timestamps restart at the join."""
    import av

    parts = []
    for k, base in enumerate((20, 120)):
        part = path.with_name(f".{path.stem}_{k}.mpg")
        with av.open(str(part), "w", format="mpeg") as c:
            s = c.add_stream("mpeg1video", rate=25)
            s.height, s.width = size
            s.pix_fmt = "yuv420p"
            for f in _pyav_frames(num_frames, *size, base=base):
                c.mux(s.encode(f))
            c.mux(s.encode())
        parts.append(part.read_bytes())
        part.unlink()
    path.write_bytes(b"".join(parts))
    return path


def make_joined_ts_with_latin1_tag(path: Path, num_frames: int = 12, size: tuple[int, int] = SIZE) -> Path:
    """Two MPEG-TS recordings joined byte for byte (timestamps restart at the join) whose audio track's language
    tag is Latin-1 (``\\xe9ng``, not UTF-8): PyAV <= 18 fails a plain ``av.open`` on it. Every frame is a keyframe,
    as PyAV's timestamp seek in MPEG-TS can land between keyframes."""
    h, w = size
    parts = []
    for k, colour in enumerate(("0x224466", "0x886644")):
        part = path.with_name(f".{path.stem}_{k}.ts")
        _ffmpeg("-f", "lavfi", "-i", f"color=c={colour}:s={w}x{h}:r=15:d={num_frames / 15}", "-f", "lavfi",
                "-i", f"sine=d={num_frames / 15}", *_x264("-g", "1"), "-c:a", "mp2", "-metadata:s:a",
                os.fsdecode(b"language=\xe9ng"), str(part))
        parts.append(part.read_bytes())
        part.unlink()
    path.write_bytes(b"".join(parts))
    return path


def make_corpus(root: str | Path) -> Corpus:
    """Write the corpus under ``root`` (which must be empty or absent) and describe it."""
    root = Path(root).absolute()  # (symlinks below point at absolute paths)
    rng = np.random.default_rng(0)
    c = Corpus(root)
    tl, tr, vl, vr = root / "train/left", root / "train/right", root / "val/left", root / "val/right"
    for d in (tl, tr, vl, vr, root / "train/empty", root / "train/broken_only"):
        d.mkdir(parents=True, exist_ok=True)

    for i in range(4):
        c.good.append(write_good(tl / f"v_left_g{i + 1:02d}_c01.mp4", "left", rng))
        c.good.append(write_good(tr / f"v_right_g{i + 1:02d}_c01.{'avi' if i % 2 else 'mp4'}", "right", rng))
    c.good.append(write_good(vl / "v_left_g01_c02.mp4", "left", rng))  # same group as a train clip: leakage
    c.good.append(write_good(vl / "v_left_g07_c01.mp4", "left", rng))
    c.good.append(write_good(vr / "v_right_g07_c01.mp4", "right", rng))
    c.good.append(write_good(vr / "v_right_g08_c01.mp4", "right", rng))
    dup = vl / "v_left_g09_c01.mp4"
    shutil.copyfile(tl / "v_left_g02_c01.mp4", dup)  # byte-identical to a train file: a duplicate across splits
    c.good.append(dup)

    def add(name: str, path: Path, expect: str, reason: str = "") -> Path:
        split, label = path.relative_to(root).parts[:2]
        c.items[name] = Item(name, path, expect, reason, split, label)
        return path

    source = tl / "v_left_g01_c01.mp4"
    data = source.read_bytes()

    # ---- broken files: each must be skipped with a reason, never stop a run
    (tl / "zero.mp4").touch()
    add("zero_bytes", tl / "zero.mp4", "fail", "empty file")
    (tl / "notes.mp4").write_text("this is a text file that only pretends to be a video\n" * 20)
    add("text_as_mp4", tl / "notes.mp4", "fail")
    (tl / "truncated.mp4").write_bytes(data[: len(data) // 2])
    add("truncated", tl / "truncated.mp4", "fail")
    mid = len(data) // 2
    garbled = data[: mid - 512] + bytes(rng.integers(0, 256, 1024, dtype=np.uint8)) + data[mid + 512:]
    faststart = tl / "garbage_middle.mp4"
    _ffmpeg("-i", str(source), "-c", "copy", "-movflags", "+faststart", str(faststart))  # index first, data after
    fs = faststart.read_bytes()
    cut = len(fs) // 2
    faststart.write_bytes(fs[:cut] + bytes(rng.integers(0, 256, 2048, dtype=np.uint8)) + fs[cut + 2048:])
    add("garbage_middle", faststart, "fail", "invalid data")  # index intact, frames after the garbage undecodable
    (tl / "garbage_header.mp4").write_bytes(garbled[:64] + bytes(256) + garbled[320:])
    add("garbage_header", tl / "garbage_header.mp4", "fail")
    _lavfi(tl / "audio_only.mp4", "sine=frequency=440:duration=0.5", "-c:a", "aac")
    add("audio_only", tl / "audio_only.mp4", "fail", "video stream")
    os.symlink("loop_b.mp4", tl / "loop_a.mp4")
    os.symlink("loop_a.mp4", tl / "loop_b.mp4")
    add("symlink_loop", tl / "loop_a.mp4", "fail", "symlink loop")
    add("symlink_loop_b", tl / "loop_b.mp4", "fail", "symlink loop")
    os.symlink("does_not_exist.mp4", tl / "broken_link.mp4")
    add("broken_symlink", tl / "broken_link.mp4", "fail", "broken symlink")
    (tl / "folder.mp4").mkdir()
    add("directory_named_mp4", tl / "folder.mp4", "fail", "directory")
    locked = tl / "locked.mp4"
    shutil.copyfile(source, locked)
    locked.chmod(0)
    # root reads a mode-000 file anyway: it is only unreadable for other users (see test_unreadable_*)
    add("unreadable", locked, "ok" if os.geteuid() == 0 else "fail", "" if os.geteuid() == 0 else "permission")
    bo = root / "train/broken_only"
    (bo / "empty.mp4").touch()
    add("broken_only_zero", bo / "empty.mp4", "fail", "empty file")
    (bo / "html.mp4").write_text("<html><body>404 Not Found</body></html>\n")
    add("broken_only_html", bo / "html.mp4", "fail")

    # ---- odd but valid files: each must decode and train normally
    _ffmpeg("-i", str(source), "-frames:v", "1", *_x264(), str(tl / "one_frame.mp4"))
    add("one_frame", tl / "one_frame.mp4", "ok")
    add("shorter_than_clip", write_good(tl / "three_frames.mp4", "left", rng, num_frames=3), "ok")
    add("portrait_9x16", write_good(tl / "portrait.mp4", "left", rng, size=(64, 36)), "ok")
    add("uhd_3840x2160", make_uhd(tl / "uhd.mp4"), "ok")
    _lavfi(tl / "gray.mkv", "testsrc2=s=40x32:r=15:d=1", "-pix_fmt", "gray", "-c:v", "ffv1")
    add("grayscale", tl / "gray.mkv", "ok")
    _lavfi(tl / "vfr.mp4", "testsrc2=s=40x32:r=30:d=1.4",
           "-vf", "setpts='if(lt(N,20),N/30,0.67+(N-20)/8)/TB'", "-fps_mode", "vfr", *_x264())
    add("variable_frame_rate", tl / "vfr.mp4", "ok")
    plain = _lavfi(root / "rot_src.mp4", "testsrc2=s=40x32:r=15:d=1", *_x264())
    _ffmpeg("-i", str(plain), "-c", "copy", "-metadata:s:v:0", "rotate=90", str(tr / "rotated.mp4"))
    plain.unlink()
    add("rotation_metadata", tr / "rotated.mp4", "ok")
    add("name_spaces_quotes_unicode",
        write_good(tl / "it's a \"clip\" ñandú 視頻 (1).mp4", "left", rng), "ok")
    add("upper_case_ext", write_good(tr / "SHOUTING.MP4", "right", rng), "ok")
    add("upper_case_avi", write_good(tr / "OLD.AVI", "right", rng), "ok")
    os.symlink(source, tr / "link_to_left_clip.mp4")
    add("symlink", tr / "link_to_left_clip.mp4", "ok")
    add("long_20min", make_long(tr / "long.mp4"), "ok")
    return c


def make_clean_dataset(root: str | Path, train_per_class: int = 6, val_per_class: int = 2,
                       motions: tuple[str, ...] = ("left", "right"), seed: int = 0) -> Path:
    """A tiny, fully readable ``train/`` + ``val/`` class-folder dataset (for resume and interrupt tests)."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    for split, n in (("train", train_per_class), ("val", val_per_class)):
        for m in motions:
            for i in range(n):
                write_good(root / split / m / f"{m}_{split}_{i:02d}.mp4", m, rng)
    return root


_CACHE: dict[str, Corpus] = {}


def corpus_fixture(tmp_path_factory) -> Corpus:
    """Build the corpus once per test session (test modules wrap this in a session fixture)."""
    if "corpus" not in _CACHE:
        _CACHE["corpus"] = make_corpus(tmp_path_factory.mktemp("badcorpus"))
    return _CACHE["corpus"]


def build_run(data_root: str | Path, run_dir: str | Path, max_epochs: int = 2, every_n_steps: int | None = 4,
              extra_callbacks: tuple = (), batch_size: int = 2, max_failed_fraction: float = 0.05,
              num_workers: int = 0, labels: list[str] | None = None, max_steps: int = -1, **model_options):
    """The same tiny, deterministic training run in the test process and in killed child processes.

    tiny_r2plus1d on 4-frame 32 px clips, seed 0, deterministic algorithms, flashvid's robust callbacks and
    atomic checkpoint IO; ``model_options``: more VideoClassifier arguments (``scheduler=...``). Returns
    ``(trainer, model, datamodule)``.
    """
    import lightning as L
    import torch

    from flashvid import Trainer, VideoClassificationData, VideoClassifier
    from flashvid.callbacks import robust_callbacks
    from flashvid.checkpoint import checkpoint_plugins

    torch.set_num_threads(2)
    L.seed_everything(0, workers=True, verbose=False)
    root = Path(data_root)
    dm = VideoClassificationData.from_folders(root / "train", root / "val" if (root / "val").is_dir() else None,
                                              batch_size=batch_size, num_workers=num_workers, seed=0)
    clip = dict(num_frames=4, crop_size=32, resize_size=36)
    model = VideoClassifier("tiny_r2plus1d", labels=labels or dm.labels, learning_rate=3e-3, data=clip,
                            max_failed_fraction=max_failed_fraction, **model_options)
    trainer = Trainer(max_epochs=max_epochs, max_steps=max_steps, default_root_dir=str(run_dir),
                      callbacks=[*robust_callbacks(run_dir, every_n_steps), *extra_callbacks],
                      plugins=checkpoint_plugins(), deterministic=True, logger=False, enable_progress_bar=False,
                      enable_model_summary=False, num_sanity_val_steps=0)
    return trainer, model, dm
