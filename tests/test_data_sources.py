"""Sources on real files: class folders, CSV/list files, UCF101 split files and bare paths, and the group-aware
validation split. Every tree is built here from real encoded demo videos, so expected counts come from the layout
each test writes, not from the implementation.
"""

from __future__ import annotations

import logging
import re
import shutil
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from flashvid.data import VideoClassificationData, group_split
from flashvid.data.sources import UCF101_GROUP_PATTERN, VideoSample, group_of

if TYPE_CHECKING:
    import numpy as np


@pytest.fixture(scope="module")
def clip_files(demo_root: Path) -> tuple[Path, Path]:
    """One real mp4 and one real avi to copy into the layouts below."""
    return next(demo_root.glob("train/*/*.mp4")), next(demo_root.glob("train/*/*.avi"))


def _place(src: Path, dst: Path) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    return dst


@pytest.fixture(scope="module")
def tree(tmp_path_factory, clip_files) -> Path:
    """``train``/``val`` class folders with nested, upper-case, hidden and non-video entries."""
    mp4, avi = clip_files
    root = tmp_path_factory.mktemp("tree")
    # counted: plain, upper-case extension, nested two levels deep, spaces in names
    _place(mp4, root / "train/run/a.mp4")
    _place(avi, root / "train/run/B.AVI")
    _place(mp4, root / "train/run/nested/deeper/c 1.Mp4")
    _place(avi, root / "train/walk/x.avi")
    _place(mp4, root / "train/walk/y.mp4")
    # ignored: hidden files and folders, non-video files, a hidden "class", loose files at class level
    _place(mp4, root / "train/run/.hidden.mp4")
    _place(mp4, root / "train/run/.cache/d.mp4")
    _place(mp4, root / "train/.ipynb_checkpoints/z.mp4")
    (root / "train/run/notes.txt").write_text("not a video")
    (root / "train/walk/thumb.jpg").write_bytes(b"\xff\xd8\xff")
    (root / "train/README.md").write_text("readme")
    (root / "train/walk/.DS_Store").write_bytes(b"\0")
    _place(mp4, root / "val/run/v1.mp4")
    _place(avi, root / "val/walk/v2.avi")
    _place(avi, root / "val/walk/v3.AVI")
    return root


def _names(samples: list[VideoSample]) -> list[str]:
    return sorted(Path(s.path).name for s in samples)


def test_from_folders_counts_and_labels(tree):
    dm = VideoClassificationData.from_folders(tree / "train", tree / "val", num_workers=0)
    assert dm.labels == ["run", "walk"]
    assert dm.num_classes == 2
    assert dm.label2id == {"run": 0, "walk": 1} and dm.id2label == {0: "run", 1: "walk"}
    train = dm.samples["train"]
    assert _names(train) == sorted(["a.mp4", "B.AVI", "c 1.Mp4", "x.avi", "y.mp4"])
    assert {Path(s.path).name: dm.id2label[s.label] for s in train} == {
        "a.mp4": "run", "B.AVI": "run", "c 1.Mp4": "run", "x.avi": "walk", "y.mp4": "walk"}
    assert Counter(s.label for s in dm.samples["val"]) == {0: 1, 1: 2}
    assert all(Path(s.path).is_file() for s in train)


def test_from_folders_on_the_demo_dataset(demo_root):
    """Class folders of the shipped demo data: one label per folder, in sorted order, for every split."""
    dm = VideoClassificationData.from_folders(demo_root / "train", demo_root / "val", demo_root / "test",
                                              num_workers=0)
    classes = sorted(p.name for p in (demo_root / "train").iterdir())
    assert dm.labels == classes and dm.num_classes == len(classes)
    for split in ("train", "val", "test"):
        on_disk = sorted(str(p) for p in (demo_root / split).glob("*/*") if p.suffix in (".mp4", ".avi"))
        assert sorted(s.path for s in dm.samples[split]) == on_disk
        assert all(dm.id2label[s.label] == Path(s.path).parent.name for s in dm.samples[split])


def test_val_folder_with_an_unknown_class_is_refused(tree, tmp_path, clip_files):
    _place(clip_files[0], tmp_path / "val/swim/s.mp4")
    with pytest.raises(ValueError, match="swim"):
        VideoClassificationData.from_folders(tree / "train", tmp_path / "val")


def test_missing_or_empty_folders_say_what_is_wrong(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        VideoClassificationData.from_folders(tmp_path / "nope")
    (tmp_path / "empty/cls").mkdir(parents=True)
    with pytest.raises(ValueError, match="has no videos"):
        VideoClassificationData.from_folders(tmp_path / "empty")


# ---------------------------------------------------------------------------------------------------- symlinks
def _symlink_tree(root: Path, clip_files) -> Path:
    """train/left (2 videos), train/right (3 videos), and a folder of 2 videos outside the dataset."""
    mp4, avi = clip_files
    for i in range(2):
        _place(mp4, root / f"train/left/l{i}.mp4")
    for i in range(3):
        _place(avi, root / f"train/right/r{i}.avi")
    for i in range(2):
        _place(mp4, root / f"outside/o{i}.mp4")
    return root / "train"


LIST_CHILD = r"""
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("sources", sys.argv[1])
mod = sys.modules["sources"] = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
samples, labels = mod.scan_class_folders(sys.argv[2])
print(json.dumps([[s.path, labels[s.label]] for s in samples]))
"""


def _scan_with_timeout(train: Path) -> dict[str, str]:
    """scan_class_folders in a child process (sources.py alone, no torch import), killed after 30 s: a walk
    that loops forever fails the test instead of hanging the suite."""
    import json
    import subprocess
    import sys

    import flashvid.data.sources as sources

    out = subprocess.run([sys.executable, "-c", LIST_CHILD, sources.__file__, str(train)], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0, out.stderr[-2000:]
    return dict(json.loads(out.stdout))


def test_directory_symlink_loops_neither_multiply_nor_mislabel_videos(tmp_path, clip_files, caplog):
    """`ln -s .. train/left/up` once turned 5 videos into hundreds and labelled the right ones left; `ln -s .
    left/a; ln -s . left/b` hung the scan. Each real video is listed once, under its own class, and the skipped
    links are named in the log."""
    train = _symlink_tree(tmp_path, clip_files)
    expected = {str(p): p.parent.name for p in sorted(train.rglob("*.*"))}
    (train / "left/up").symlink_to("..")
    (train / "left/a").symlink_to(".")
    (train / "left/b").symlink_to(".")
    (train / "right/deeper").mkdir()
    (train / "right/deeper/back").symlink_to("../..")  # a loop two levels down
    (train / "left/into_right").symlink_to("../right")  # another class's folder
    assert _scan_with_timeout(train) == expected
    with caplog.at_level(logging.WARNING, logger="flashvid"):
        samples, labels = __import__("flashvid").data.sources.scan_class_folders(train)
    assert {s.path: labels[s.label] for s in samples} == expected
    text = caplog.text
    for link in ("left/up", "left/a", "left/b", "deeper/back"):
        assert link in text and "points back into this folder" in text, link
    assert "left/into_right" in text and "another class folder" in text
    from flashvid.doctor import diagnose_data

    report = diagnose_data(VideoClassificationData.from_folders(train), progress=False, workers=1)
    skipped = [w for w in report.warnings if w.startswith("not following symlink")]
    assert len(skipped) == 5 and any("left/up" in w for w in skipped), report.warnings


def test_links_to_files_and_outside_folders_count_each_video_once(tmp_path, clip_files):
    """A link to a folder outside the dataset is followed (videos stored elsewhere), but two links to the same
    folder, or a file and a link to it, list each real file once; a link to a single file elsewhere counts."""
    train = _symlink_tree(tmp_path, clip_files)
    (train / "left/ext1").symlink_to(tmp_path / "outside")
    (train / "left/ext2").symlink_to(tmp_path / "outside")
    (train / "left/same_as_l0.mp4").symlink_to(train / "left/l0.mp4")
    _place(clip_files[0], tmp_path / "elsewhere/single.mp4")
    (train / "right/single.mp4").symlink_to(tmp_path / "elsewhere/single.mp4")
    got = _scan_with_timeout(train)
    names = sorted(Path(p).name for p, c in got.items() if c == "left")
    assert names == ["l0.mp4", "l1.mp4", "o0.mp4", "o1.mp4"]
    assert str(train / "left/l0.mp4") in got  # the plain path wins over the link
    assert sorted(Path(p).name for p, c in got.items() if c == "right") == ["r0.avi", "r1.avi", "r2.avi",
                                                                           "single.mp4"]


def _ramp(n: int = 30) -> "np.ndarray":
    """Frame i is flat gray 40 + 4i: a decoded frame's level says which frame it is."""
    import numpy as np

    return np.stack([np.full((48, 64, 3), 40 + 4 * i, np.uint8) for i in range(n)])


def _encode(path: Path, frames, codec: str = "libx264", **options: str) -> Path:
    """Encode with every frame's timestamp set (container chosen by the extension)."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=15)
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        s.options = options
        for i, f in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(f, format="rgb24")
            frame.pts = i
            c.mux(s.encode(frame))
        c.mux(s.encode())
    return path


def _levels(path: str, decoder: str, indices: list[int]) -> list[int]:
    from flashvid.data.decoding import open_video

    return [round((float(f.float().mean()) - 40) / 4) for f in open_video(path, decoder).frames_at(indices)]


def test_other_ffmpeg_containers_are_read_and_skipped_files_are_named(tmp_path, caplog):
    """.3gp/.flv/.wmv were silently ignored: now listed, and both readers return the right frames from them.
    Other files in a class folder are named in one line (count, examples), doctor lists it too. MPEG-TS (.ts, .mts,
    .m2ts), where both readers' seeks land on wrong frames, is named with the fix: `flashvid prepare` reads it start
    to end and writes an MP4 whose frames both readers return exactly."""
    from flashvid.data.decoding import torchcodec_status
    from flashvid.data.prepare import prepare
    from flashvid.doctor import diagnose_data

    decoders = ["pyav"] + (["torchcodec"] if torchcodec_status()[0] else [])
    frames = _ramp()
    root = tmp_path / "train"
    _encode(root / "a/clip.mp4", frames)
    _encode(root / "a/phone.3gp", frames)
    _encode(root / "b/web.flv", frames, "flv")
    _encode(root / "b/old.wmv", frames, "wmv2")
    # as camcorders and broadcast write it: H.264 with B-frames, a keyframe every 10 frames
    _encode(root / "b/camcorder.ts", frames, g="10", bf="2", preset="veryfast")
    (root / "a/notes.txt").write_text("not a video")
    (root / "b/thumb.jpg").write_bytes(b"\xff\xd8\xff")
    (root / "b/.DS_Store").write_bytes(b"\0")  # hidden: skipped without a word
    with caplog.at_level(logging.WARNING, logger="flashvid"):
        dm = VideoClassificationData.from_folders(root, num_workers=0)
    assert _names(dm.samples["train"]) == ["clip.mp4", "old.wmv", "phone.3gp", "web.flv"]
    for s in dm.samples["train"]:
        for decoder in decoders:
            assert _levels(s.path, decoder, [0, 10, 17, 29]) == [0, 10, 17, 29], (s.path, decoder)
    lines = [r.getMessage() for r in caplog.records]
    assert any("skipped 2 file(s) that are not videos (e.g. a/notes.txt, b/thumb.jpg)" in m for m in lines), lines
    assert any("skipped 1 MPEG-TS file(s) (e.g. b/camcorder.ts)" in m and "flashvid prepare" in m for m in lines)
    assert not any(".DS_Store" in m for m in lines)
    report = diagnose_data(dm, progress=False, workers=1)
    assert sum("skipped" in w for w in report.warnings) == 2, report.warnings

    out = tmp_path / "prepared"
    rep = prepare(out, train_folder=root, short_side=64, keyframe_interval=0.5, max_fps=None, progress=False,
                  workers=1)
    ts = next(f for f in rep.files if f["src"].endswith("camcorder.ts"))
    assert ts["action"] == "converted" and ts["dst"] == "train/b/camcorder.mp4", ts  # small, yet converted
    for decoder in decoders:
        assert _levels(str(out / ts["dst"]), decoder, [0, 10, 17, 29]) == [0, 10, 17, 29], decoder


# ---------------------------------------------------------------------------------------------------- CSV files
def test_from_csv_with_label_names_and_relative_paths(tmp_path, clip_files):
    mp4, avi = clip_files
    data = tmp_path / "videos"
    _place(mp4, data / "a/one.mp4")
    _place(avi, data / "b/two.avi")
    absolute = _place(mp4, tmp_path / "elsewhere/three.mp4")
    _place(avi, data / "my clip.avi")
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "train.csv").write_text(
        f"path,label\na/one.mp4,jump\nb/two.avi,sit\n{absolute},jump\n\"my clip.avi\",wave\n")
    (lists / "val.csv").write_text("b/two.avi,sit\na/one.mp4,wave\n")  # no header
    dm = VideoClassificationData.from_csv(lists / "train.csv", lists / "val.csv", root=data, num_workers=0)
    assert dm.labels == ["jump", "sit", "wave"]
    got = {s.path: dm.id2label[s.label] for s in dm.samples["train"]}
    assert got == {str(data / "a/one.mp4"): "jump", str(data / "b/two.avi"): "sit", str(absolute): "jump",
                   str(data / "my clip.avi"): "wave"}
    assert [dm.id2label[s.label] for s in dm.samples["val"]] == ["sit", "wave"]
    assert all(Path(s.path).is_file() for split in dm.samples.values() for s in split)


def test_from_csv_relative_paths_default_to_the_list_files_folder(tmp_path, clip_files):
    _place(clip_files[0], tmp_path / "clips/x.mp4")
    (tmp_path / "train.csv").write_text("clips/x.mp4,cat\n")
    dm = VideoClassificationData.from_csv(tmp_path / "train.csv", num_workers=0)
    assert [s.path for s in dm.samples["train"]] == [str(tmp_path / "clips/x.mp4")]


def test_from_csv_with_label_indices(tmp_path, clip_files):
    """Index labels: with ``labels=`` they name those classes; without, classes are the indices themselves."""
    for i in range(4):
        _place(clip_files[i % 2], tmp_path / f"v{i}.mp4")
    # MMAction2-style space-separated list file, paths relative to the list's folder
    (tmp_path / "train.txt").write_text("v0.mp4 2\nv1.mp4 0\nv2.mp4 2\nv3.mp4 1\n")
    named = VideoClassificationData.from_csv(tmp_path / "train.txt", labels=["cat", "dog", "eel"], num_workers=0)
    assert named.labels == ["cat", "dog", "eel"]
    assert [named.id2label[s.label] for s in named.samples["train"]] == ["eel", "cat", "eel", "dog"]
    bare = VideoClassificationData.from_csv(tmp_path / "train.txt", num_workers=0)
    assert bare.labels == ["0", "1", "2"] and bare.num_classes == 3
    assert [s.label for s in bare.samples["train"]] == [2, 0, 2, 1]


def test_from_csv_with_a_byte_order_mark_and_other_headers(tmp_path, clip_files):
    """Excel's "CSV UTF-8" starts with a BOM: the header once became a sample and 'label' a class. Headers are
    recognised in any case and column order, and a non-UTF-8 file is a one-line error."""
    for i in range(2):
        _place(clip_files[0], tmp_path / f"v{i}.mp4")
    (tmp_path / "bom.csv").write_bytes("path,label\nv0.mp4,cat\nv1.mp4,dog\n".encode("utf-8-sig"))
    dm = VideoClassificationData.from_csv(tmp_path / "bom.csv", num_workers=0)
    assert dm.labels == ["cat", "dog"] and [Path(s.path).name for s in dm.samples["train"]] == ["v0.mp4", "v1.mp4"]
    (tmp_path / "swapped.csv").write_bytes("\ufeffClass,Video\ncat,v0.mp4\ndog,v1.mp4\n".encode())
    dm = VideoClassificationData.from_csv(tmp_path / "swapped.csv", num_workers=0)
    assert {Path(s.path).name: dm.id2label[s.label] for s in dm.samples["train"]} == {"v0.mp4": "cat",
                                                                                      "v1.mp4": "dog"}
    (tmp_path / "latin1.csv").write_bytes("v0.mp4,caf\xe9\n".encode("latin-1"))
    with pytest.raises(ValueError, match="latin1.csv.*not UTF-8.*save it as UTF-8"):
        VideoClassificationData.from_csv(tmp_path / "latin1.csv", num_workers=0)


def test_from_csv_paths_outside_the_root_warn_or_are_refused(tmp_path, clip_files, caplog):
    """`../x.mp4` and absolute rows escape data.root: accepted with a warning (also in flashvid doctor's report),
    refused with allow_outside_root=False; without a root, absolute paths are the normal case and pass quietly."""
    from flashvid.doctor import diagnose_data

    root = tmp_path / "videos"
    inside = _place(clip_files[0], root / "a/in.mp4")
    escaped = _place(clip_files[0], tmp_path / "secret/x.mp4")
    other = _place(clip_files[0], tmp_path / "secret/y.mp4")  # a row naming x.mp4 again would be a duplicate
    (tmp_path / "train.csv").write_text(f"a/in.mp4,cat\n../secret/x.mp4,dog\n{other},dog\n")
    with caplog.at_level(logging.WARNING, logger="flashvid"):
        dm = VideoClassificationData.from_csv(tmp_path / "train.csv", root=root, num_workers=0)
    assert len(dm.samples["train"]) == 3
    assert "2 listed path(s) resolve outside data.root" in caplog.text and "allow_outside_root=false" in caplog.text
    report = diagnose_data(dm, progress=False, workers=1)
    assert any("outside data.root" in w and "secret/x.mp4" in w for w in report.warnings), report.warnings
    with pytest.raises(ValueError, match=r"train list .*2 listed path\(s\) resolve outside data.root.*secret"):
        VideoClassificationData.from_csv(tmp_path / "train.csv", root=root, allow_outside_root=False,
                                         num_workers=0)
    caplog.clear()
    (tmp_path / "abs.csv").write_text(f"{inside},cat\n{escaped},dog\n")
    with caplog.at_level(logging.WARNING, logger="flashvid"):
        dm = VideoClassificationData.from_csv(tmp_path / "abs.csv", allow_outside_root=False, num_workers=0)
    assert len(dm.samples["train"]) == 2 and "outside" not in caplog.text


def test_from_csv_empty_labels_duplicate_rows_and_two_labels_for_one_video(tmp_path, clip_files, caplog, capsys):
    """`x.mp4,` once made a class named '' (doctor: "class '' has no videos"); exact duplicate rows counted twice
    without a word; one video under two labels went through training silently. Now: an empty label is a one-line
    error naming the file and line; duplicates count once with a warning naming the file and how many (doctor lists
    it); two labels for one video are refused, naming the file, the video and both labels, also by `flashvid train`."""
    from flashvid.cli import main
    from flashvid.doctor import diagnose_data

    for name in ("a.mp4", "b.mp4", "c.mp4"):
        _place(clip_files[0], tmp_path / name)
    (tmp_path / "empty.csv").write_text("path,label\na.mp4,cat\nb.mp4,\n")
    with pytest.raises(ValueError, match=r"empty.csv:3: empty label in 'b.mp4,'"):
        VideoClassificationData.from_csv(tmp_path / "empty.csv", num_workers=0)

    (tmp_path / "dups.csv").write_text("a.mp4,cat\nb.mp4,dog\na.mp4,cat\n./b.mp4,dog\nc.mp4,dog\n")
    with caplog.at_level(logging.WARNING, logger="flashvid"):
        dm = VideoClassificationData.from_csv(tmp_path / "dups.csv", num_workers=0)
    assert _names(dm.samples["train"]) == ["a.mp4", "b.mp4", "c.mp4"]
    assert re.search(r"dups.csv: 2 duplicate row\(s\) .*counted once, e.g. 'a.mp4' \(lines 1 and 3\)", caplog.text)
    report = diagnose_data(dm, progress=False, workers=1)
    assert any("2 duplicate row(s)" in w for w in report.warnings), report.warnings

    (tmp_path / "two.csv").write_text("a.mp4,cat\nb.mp4,dog\nc.mp4,dog\na.mp4,dog\n")
    with pytest.raises(ValueError, match=r"two.csv:4: 'a.mp4' is listed under two labels, 'cat' \(line 1\) and "
                                         r"'dog'.*'a.mp4,cat;dog'"):
        VideoClassificationData.from_csv(tmp_path / "two.csv", num_workers=0)
    code = main(["train", "data=csv", f"data.train_file={tmp_path / 'two.csv'}", "model=tiny",
                 f"hydra.run.dir={tmp_path / 'run'}", "hydra/job_logging=none", "hydra/hydra_logging=none"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "two.csv:4" in err and "'cat'" in err and "'dog'" in err, err


def test_from_csv_rejects_unknown_labels(tmp_path):
    (tmp_path / "train.csv").write_text("a.mp4,cat\n")
    (tmp_path / "val.csv").write_text("b.mp4,dog\n")
    with pytest.raises(ValueError, match="unknown label 'dog'"):
        VideoClassificationData.from_csv(tmp_path / "train.csv", tmp_path / "val.csv")


# ---------------------------------------------------------------------------------------------------- UCF101
UCF_CLASSES = ["Zumba", "ApplyLipstick", "Basketball"]  # classInd order on purpose not alphabetical


@pytest.fixture(scope="module")
def ucf(tmp_path_factory, clip_files) -> tuple[Path, Path, list[str], list[str]]:
    """UCF101 layout: ``root/<Class>/v_<Class>_gXX_cYY.avi`` plus classInd/trainlist01/testlist01 (CRLF, as
    shipped). Groups 1-3 train, 4 test."""
    root = tmp_path_factory.mktemp("ucf")
    videos, ann = root / "UCF-101", root / "ucfTrainTestlist"
    ann.mkdir()
    train_lines, test_lines = [], []
    for k, cls in enumerate(UCF_CLASSES, start=1):
        for g in range(1, 5):
            for c in range(1, 3):
                rel = f"{cls}/v_{cls}_g{g:02d}_c{c:02d}.avi"
                _place(clip_files[1], videos / rel)
                if g == 4:
                    test_lines.append(rel)
                else:
                    train_lines.append(f"{rel} {k}")
    (ann / "classInd.txt").write_text("".join(f"{k} {c}\r\n" for k, c in enumerate(UCF_CLASSES, 1)))
    (ann / "trainlist01.txt").write_text("\r\n".join(train_lines) + "\r\n")
    (ann / "testlist01.txt").write_text("\r\n".join(test_lines) + "\r\n")
    return videos, ann, train_lines, test_lines


def test_from_ucf101_official_split(ucf):
    videos, ann, train_lines, test_lines = ucf
    dm = VideoClassificationData.from_ucf101(videos, ann, val_split=None, num_workers=0)
    assert dm.labels == UCF_CLASSES  # classInd's order, not sorted
    assert len(dm.samples["train"]) == len(train_lines) and "val" not in dm.samples
    assert sorted(s.path for s in dm.samples["test"]) == sorted(str(videos / r) for r in test_lines)
    for s in dm.samples["train"] + dm.samples["test"]:
        assert Path(s.path).is_file()
        assert dm.id2label[s.label] == Path(s.path).parent.name


def test_from_ucf101_holds_out_whole_groups(ucf):
    videos, ann, train_lines, _ = ucf
    dm = VideoClassificationData.from_ucf101(videos, ann, val_split=0.3, num_workers=0)
    train, val = dm.samples["train"], dm.samples["val"]
    assert len(train) + len(val) == len(train_lines)
    _assert_group_split(train, val, UCF101_GROUP_PATTERN, dm.num_classes)
    assert all("_g04_" not in s.path for s in train + val)  # the test groups stay in the test set


# ---------------------------------------------------------------------------------------------------- group split
def _assert_group_split(train: list[VideoSample], val: list[VideoSample], pattern: str | None,
                        num_classes: int) -> None:
    """No (class, group) on both sides, and every class on both sides."""
    groups = {side: {(s.label, group_of(s.path, pattern)) for s in samples}
              for side, samples in (("train", train), ("val", val))}
    assert groups["train"] and groups["val"]
    assert not groups["train"] & groups["val"], "a recording group is on both sides"
    assert {s.label for s in train} == {s.label for s in val} == set(range(num_classes))
    assert not {s.path for s in train} & {s.path for s in val}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_val_split_by_group_on_folders(demo_root, seed: int):
    """Demo file names carry ``_gNN_`` groups: held-out validation never shares a group with training."""
    dm = VideoClassificationData.from_folders(demo_root / "train", val_split=0.25, seed=seed, num_workers=0)
    everything = VideoClassificationData.from_folders(demo_root / "train", num_workers=0).samples["train"]
    train, val = dm.samples["train"], dm.samples["val"]
    assert sorted(train + val, key=lambda s: s.path) == sorted(everything, key=lambda s: s.path)
    _assert_group_split(train, val, UCF101_GROUP_PATTERN, dm.num_classes)


def test_val_split_depends_on_the_seed_only(demo_root):
    def split(seed: int) -> list[str]:
        # 0.4: both groups of a class (4 and 2 of its 6 videos) fit within twice the asked share, so the seed picks
        dm = VideoClassificationData.from_folders(demo_root / "train", val_split=0.4, seed=seed)
        return [s.path for s in dm.samples["val"]]

    assert split(0) == split(0)
    assert len({tuple(split(s)) for s in range(6)}) > 1


def test_val_split_without_groups_goes_file_by_file(tmp_path, clip_files):
    for cls in ("a", "b"):
        for i in range(5):
            _place(clip_files[i % 2], tmp_path / cls / f"{cls}{i}.mp4")
    samples = VideoClassificationData.from_folders(tmp_path).samples["train"]
    train, val = group_split(samples, 0.4, pattern=None)
    _assert_group_split(train, val, None, 2)
    assert Counter(s.label for s in val) == {0: 2, 1: 2}


def test_val_split_warns_about_classes_it_cannot_hold_out(tmp_path, clip_files, caplog):
    """A class whose videos are one recording group cannot be validated without leaking it: say so."""
    for g in (1, 2):
        _place(clip_files[0], tmp_path / f"many/v_many_g{g:02d}_c01.mp4")
    _place(clip_files[0], tmp_path / "single/v_single_g01_c01.mp4")
    _place(clip_files[1], tmp_path / "single/v_single_g01_c02.avi")
    samples = VideoClassificationData.from_folders(tmp_path).samples["train"]
    with caplog.at_level(logging.WARNING, logger="flashvid.data.sources"):
        train, val = group_split(samples, 0.5)
    assert {s.label for s in val} == {0}
    assert any(r.levelno == logging.WARNING and "single" in r.getMessage() for r in caplog.records)
    with pytest.raises(ValueError, match="no group to hold out"):
        group_split([s for s in samples if s.label == 1], 0.5)


# ---------------------------------------------------------------------------------------------------- predict paths
def test_from_paths_collects_files_and_folders(tree, clip_files, tmp_path):
    single = _place(clip_files[1], tmp_path / "loose/Single File.AVI")
    dm = VideoClassificationData.from_paths([tree / "train/walk", single, tree / "train/run"], num_workers=0)
    names = [Path(s.path).name for s in dm.samples["predict"]]
    # folders are searched recursively and sorted; inputs keep their order; hidden and non-video entries skipped
    assert names == ["x.avi", "y.mp4", "Single File.AVI", "B.AVI", "a.mp4", "c 1.Mp4"]
    assert all(s.label == -1 for s in dm.samples["predict"])
    assert set(dm.samples) == {"predict"}
    alias = VideoClassificationData.from_files(str(tree / "train"), labels=["run", "walk"], num_workers=0)
    assert len(alias.samples["predict"]) == 5 and alias.labels == ["run", "walk"]
    assert not any(re.search(r"/\.|\.(txt|jpg|md)$", s.path) for s in alias.samples["predict"])


def test_from_paths_refuses_a_folder_without_videos(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="no video files"):
        VideoClassificationData.from_paths(tmp_path)


def test_a_new_source_is_one_reader_and_one_yaml(demo_root: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A JSON list source, registered as conf/data/<name>.yaml would name it: the datamodule reads it
    (``from_source``), the config check takes its keys and checks its paths, ``prepare`` copies it (as list files);
    nothing else learns about it."""
    import json

    from flashvid import source_registry
    from flashvid.commands.config import ConfigError, check_arguments, check_data_paths
    from flashvid.data.prepare import prepare
    from flashvid.data.sources import VideoSample
    from flashvid.source_registry import SourceRead, register_source

    monkeypatch.setattr(source_registry, "_SOURCES", dict(source_registry._SOURCES))

    @register_source("json_list", paths=("train_json",))
    def read_json_list(train_json: str) -> SourceRead:
        rows = json.loads(Path(train_json).read_text())
        labels = sorted({r["label"] for r in rows})
        samples = [VideoSample(str(Path(train_json).parent / r["video"]), labels.index(r["label"])) for r in rows]
        return SourceRead({"train": samples}, labels, inputs=(Path(train_json),))

    videos = sorted(demo_root.glob("train/*/*.mp4"))[:6]
    listing = tmp_path / "data" / "train.json"
    listing.parent.mkdir()
    for v in videos:
        (listing.parent / v.name).symlink_to(v)
    listing.write_text(json.dumps([{"video": v.name, "label": v.parent.name} for v in videos]))

    node = {"_target_": "flashvid.VideoClassificationData.from_source", "source": "json_list",
            "train_json": str(listing), "batch_size": 2, "val_split": 0.3, "group_pattern": None}
    check_arguments(node, "data")
    check_data_paths(node)
    with pytest.raises(ConfigError, match=r"data\.train_json=.*missing.json does not exist"):
        check_data_paths({**node, "train_json": str(tmp_path / "missing.json")})
    dm = VideoClassificationData.from_source("json_list", train_json=listing, val_split=0.3, group_pattern=None)
    assert dm.labels == sorted({v.parent.name for v in videos})
    assert len(dm.samples["train"]) + len(dm.samples["val"]) == len(videos) and dm.samples["val"]
    report = prepare(tmp_path / "copy", source="json_list", train_json=listing, short_side=32, progress=False,
                     workers=1)
    assert not report.failed and report.data_options.startswith("data=csv ")
    copy = VideoClassificationData.from_csv(tmp_path / "copy" / "train.csv")
    assert copy.labels == dm.labels and len(copy.samples["train"]) == len(videos)


def test_the_demo_is_told_by_its_source_alone(tmp_path: Path) -> None:
    """The demo's folders are written on first use, so their paths are not checked; which source writes its data is
    the registry's to say, not a ``generate:`` key's."""
    from flashvid.commands.config import ConfigError, check_data_paths

    missing = str(tmp_path / "demo_data" / "train")
    check_data_paths({"source": "demo", "root": str(tmp_path / "demo_data"), "train_folder": missing})
    with pytest.raises(ConfigError, match="does not exist"):
        check_data_paths({"source": "folders", "generate": {}, "train_folder": missing})
