"""Bad and odd inputs through training, the dataset and predict: one bad file never stops a run or hides results.

Uses the corpus of tests/badvideos.py (real files from real encoders: zero bytes, text, truncated, garbage,
audio-only, symlink loops, 4K, portrait, grayscale, VFR, rotated, 20-minute...).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from badvideos import (
    Corpus,
    _ffmpeg,
    build_run,
    corpus_fixture,
    make_backwards_timestamps,
    make_clean_dataset,
    make_frame_rate,
    make_huge_frames,
    make_joined_ts_with_latin1_tag,
    make_long,
    make_thumbnail_first,
    make_uhd,
    write_good,
)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Corpus:
    return corpus_fixture(tmp_path_factory)


def _in_training(corpus: Corpus, item) -> bool:
    return item.split in ("train", "val")


def test_training_skips_reports_and_logs_bad_files_once(corpus, tmp_path, caplog) -> None:
    """A short CPU run over a folder mixing good, odd and broken files finishes; every broken file is skipped,
    logged once (over two epochs) with its reason, and listed in failures.json; odd files train normally."""
    run = tmp_path / "run"
    trainer, model, dm = build_run(corpus.root, run, max_epochs=2, every_n_steps=None, batch_size=4,
                                   max_failed_fraction=0.9)
    with caplog.at_level(logging.WARNING, logger="flashvid"):
        trainer.fit(model, dm)
    assert trainer.state.finished and trainer.global_step > 0
    report = json.loads((run / "failures.json").read_text())
    assert report["status"] == "finished"
    failed = {f["path"]: f["reason"] for f in report["failed"]}
    expected_bad = {str(i.path): i for i in corpus.bad()}
    assert set(failed) == set(expected_bad)
    for path, reason in failed.items():
        assert expected_bad[path].reason in reason.lower(), (path, reason)
        logged = [r for r in caplog.records if "skipping unreadable video" in r.getMessage() and path in r.getMessage()]
        assert len(logged) == 1, path
    seen = set(model._seen)
    for item in corpus.odd():
        assert str(item.path) in seen and str(item.path) not in failed, item.name
    assert report["num_seen"] == len(corpus.all_paths())


def test_too_many_bad_files_stop_the_run_with_a_clear_message(tmp_path) -> None:
    """Above max_failed_fraction (default 5%) the run stops after the epoch with a message naming the files and
    the fixes, and the report still gets written."""
    from flashvid.classifier import TooManyFailedFiles

    data = make_clean_dataset(tmp_path / "data", train_per_class=2, val_per_class=1)
    (data / "train/left/zero.mp4").touch()
    run = tmp_path / "run"
    trainer, model, dm = build_run(data, run, max_epochs=1, every_n_steps=None)
    with pytest.raises(TooManyFailedFiles) as err:
        trainer.fit(model, dm)
    msg = str(err.value)
    assert "zero.mp4" in msg and "flashvid doctor" in msg and "max_failed_fraction" in msg
    report = json.loads((run / "failures.json").read_text())
    assert report["status"] == "failed" and report["num_failed"] == 1


def test_odd_files_decode_to_full_padded_clips(corpus, decoder: str) -> None:
    """Portrait, 4K, grayscale, VFR, rotated, one-frame and too-short files give full clips of the requested size;
    a clip longer than the video repeats its last frame (flashvid pads; there is no 'too short' error)."""
    from flashvid.data import ClipSampling, ShortSideCenterCrop, VideoClipDataset
    from flashvid.data.dataset import DecodeFailure

    odd = corpus.odd()
    ds = VideoClipDataset([__import__("flashvid").data.VideoSample(str(i.path), 0) for i in odd],
                          ClipSampling(num_frames=32, sampling_rate=2), ShortSideCenterCrop(24, 28), "center",
                          decoder=decoder)
    for k, item in enumerate(odd):
        out = ds[k]
        assert not isinstance(out, DecodeFailure), (item.name, out)
        assert out["video"].shape == (32, 3, 24, 24) and out["video"].dtype == torch.uint8, item.name
    one = next(k for k, i in enumerate(odd) if i.name == "one_frame")
    clip = ds[one]["video"]
    assert all(torch.equal(clip[0], f) for f in clip)  # one frame, repeated
    short = next(k for k, i in enumerate(odd) if i.name == "shorter_than_clip")
    clip = ds[short]["video"]
    assert torch.equal(clip[-1], clip[-2]) and len({f.float().sum().item() for f in clip}) <= 3


def test_predict_gives_every_file_its_result_or_its_error(corpus, decoder: str) -> None:
    """predict over the whole corpus (plus a missing path): one entry per input, in order; broken files carry
    their reason, every other file a label."""
    from flashvid import VideoClassifier

    model = VideoClassifier("tiny_r2plus1d", labels=["left", "right"], data=dict(num_frames=4, crop_size=32,
                                                                                 resize_size=36))
    items = list(corpus.items.values())
    missing = corpus.root / "no_such_file.mp4"
    paths = [*(i.path for i in items), *corpus.good, missing]
    results = model.predict(paths, batch_size=4, decoder=decoder)
    assert [r["path"] for r in results] == [str(p) for p in paths]
    by_path = {r["path"]: r for r in results}
    for item in items:
        r = by_path[str(item.path)]
        if item.expect == "fail":
            assert r["label"] is None and item.reason in r["error"].lower(), (item.name, r)
        else:
            assert r["label"] in ("left", "right") and "error" not in r, (item.name, r)
    assert by_path[str(missing)]["error"] == "file not found"
    assert all(by_path[str(p)]["label"] for p in corpus.good)


RSS_CHILD = r'''
import resource, sys, time
import torch
from flashvid.data import ClipSampling, ShortSideCenterCrop, VideoClipDataset, VideoSample
torch.set_num_threads(1)
ds = VideoClipDataset([VideoSample(sys.argv[1], 0), VideoSample(sys.argv[2], 0)],
                      ClipSampling(num_frames=8, sampling_rate=2), ShortSideCenterCrop(224, 256), "center")
ds[1]  # warm up the decoder libraries on the small file
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter(); a = ds[0]["video"]; uhd_s = time.perf_counter() - t
mid = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter(); b = ds[1]["video"]; long_s = time.perf_counter() - t
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(before, mid, after, uhd_s, long_s, tuple(a.shape), tuple(b.shape))
'''


def test_4k_and_long_files_decode_in_bounded_memory(tmp_path) -> None:
    """One 8-frame clip of a 48-frame 3840x2160 video adds far less peak memory than decoding the file
    (48 x 24.9 MB = 1.2 GB), and a clip of a 20-minute file is quick and small: only needed frames are decoded."""
    uhd = make_uhd(tmp_path / "uhd.mp4", num_frames=48)
    long = make_long(tmp_path / "long.mp4")
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    out = subprocess.run([sys.executable, "-c", RSS_CHILD, str(uhd), str(long)], capture_output=True, text=True,
                         env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    before, mid, after, uhd_s, long_s, *_ = out.stdout.split()
    frame_mb = 3840 * 2160 * 3 / 2**20
    uhd_growth_mb = (int(mid) - int(before)) / 1024  # ru_maxrss is in KiB on Linux
    assert uhd_growth_mb < 20 * frame_mb, f"4K clip raised peak RSS by {uhd_growth_mb:.0f} MB"
    assert (int(after) - int(mid)) / 1024 < 100 and float(long_s) < 10, out.stdout


def test_clear_errors_for_missing_or_empty_data_roots(tmp_path) -> None:
    """A missing root and a root without videos fail at once with messages that name the fix."""
    from flashvid import VideoClassificationData

    with pytest.raises(FileNotFoundError, match="does not exist: check the path"):
        VideoClassificationData.from_folders(tmp_path / "nope")
    (tmp_path / "empty" / "cls").mkdir(parents=True)
    (tmp_path / "empty" / "cls" / "readme.txt").write_text("no videos here")
    with pytest.raises(ValueError, match="has no videos: expected <class>/<video>"):
        VideoClassificationData.from_folders(tmp_path / "empty")


def test_checkpoint_with_other_classes_is_refused_by_name(tmp_path) -> None:
    """Resuming a checkpoint on data with other classes names both class lists and the fix, instead of a head
    size mismatch (or, with as many classes, silently mixing them up)."""
    from flashvid.callbacks import ClassMismatchError

    data = make_clean_dataset(tmp_path / "data", train_per_class=2, val_per_class=1)
    trainer, model, dm = build_run(data, tmp_path / "a", max_epochs=1, every_n_steps=None)
    trainer.fit(model, dm)
    ckpt = tmp_path / "a" / "checkpoints" / "last.ckpt"
    other = tmp_path / "other"
    for cls in ("cats", "dogs"):
        write_good(other / "train" / cls / "a.mp4", "left", __import__("numpy").random.default_rng(0))
        write_good(other / "train" / cls / "b.mp4", "right", __import__("numpy").random.default_rng(1))
    trainer, model, dm = build_run(other, tmp_path / "b", max_epochs=2, every_n_steps=None)
    with pytest.raises(ClassMismatchError, match=r"\['left', 'right'\].*\['cats', 'dogs'\].*pretrained"):
        trainer.fit(model, dm, ckpt_path=str(ckpt))


def test_backbone_input_mismatch_names_the_settings() -> None:
    """A transformer built for 4-frame 32 px clips, fed 8-frame clips: the error says what it was built for,
    what it got and which data setting to change."""
    from flashvid import VideoClassifier

    model = VideoClassifier("videomae_small", num_classes=2, backbone_kwargs=dict(
        num_frames=4, image_size=32, num_hidden_layers=1, hidden_size=64, num_attention_heads=2,
        intermediate_size=128))
    with pytest.raises(ValueError, match=r"cannot take clips of 8 frames of 32x32.*built for 4 frames of 32x32"):
        model(torch.zeros(1, 8, 3, 32, 32, dtype=torch.uint8))


# ------------------------------------------------------------------------------------------ odd streams and headers
DECODERS = ["pyav", "torchcodec"]


@pytest.fixture(scope="module")
def odd_streams(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("odd_streams")
    from fractions import Fraction

    return {"thumbnail": make_thumbnail_first(d / "thumbnail_first.mp4"),
            "fps_90k": make_frame_rate(d / "fps_90k.mp4", 90000),
            "fps_tiny": make_frame_rate(d / "fps_tiny.mp4", Fraction(1, 1000)),
            "huge": make_huge_frames(d / "huge.mov"),
            "backwards": make_backwards_timestamps(d / "joined.mpg")}


def _brightness(frames: torch.Tensor) -> list[float]:
    return frames.float().mean(dim=(1, 2, 3)).tolist()


@pytest.mark.parametrize("decoder", DECODERS)
def test_a_thumbnail_stream_first_is_not_taken_for_the_video(odd_streams, decoder, caplog, monkeypatch) -> None:
    """First (and default) stream 16x16, second the 40x32 video: the largest is decoded, as ffmpeg picks it, and
    the log says which stream and why."""
    from flashvid.data import decoding

    monkeypatch.setattr(decoding, "_said", set())
    path = odd_streams["thumbnail"]
    with caplog.at_level(logging.INFO, logger="flashvid"):
        reader = decoding.open_video(path, decoder)
        frames = reader.frames_at([0, 11])
        reader.close()
    assert (reader.info.width, reader.info.height) == (40, 32) and tuple(frames.shape[-2:]) == (32, 40)
    assert f"{path} has 2 video streams: using stream 1 (40x32), the largest, as ffmpeg does" in caplog.text


@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize("name", ["fps_90k", "fps_tiny"])
def test_absurd_frame_rate_headers_fall_back_with_a_warning(odd_streams, name, decoder, caplog, monkeypatch) -> None:
    """90000 fps (a time base written as the rate) and 1/1000 fps: sampling uses 30 fps, the frames still come in
    order, and a warning names the file and the fix."""
    from flashvid.data import decoding

    monkeypatch.setattr(decoding, "_said", set())
    path = odd_streams[name]
    with caplog.at_level(logging.WARNING, logger="flashvid"):
        reader = decoding.open_video(path, decoder)
        frames = reader.frames_at(list(range(12)))
        reader.close()
    assert reader.info.num_frames == 12 and reader.info.fps == decoding.ASSUMED_FPS
    bright = _brightness(frames)
    assert bright == sorted(bright) and bright[0] < bright[-1]  # each frame is brighter than the last: in order
    assert str(path) in caplog.text and "frame-rate header says" in caplog.text
    assert "cannot be right" in caplog.text and "ffmpeg -i IN -r 30 OUT" in caplog.text


@pytest.mark.parametrize("decoder", DECODERS)
def test_a_small_file_of_huge_frames_is_refused_before_decoding(odd_streams, decoder) -> None:
    """A 90 KB file of 8192x8192 frames: a 16-frame clip would need 3 GB, so the item is a failure whose reason
    gives the size and the fix, and nothing is decoded (the check runs on the header)."""
    from flashvid.data import ClipSampling, VideoClipDataset, VideoSample
    from flashvid.data.dataset import DecodeFailure

    path = odd_streams["huge"]
    assert path.stat().st_size < 500_000
    ds = VideoClipDataset([VideoSample(str(path), 0)], ClipSampling(num_frames=16, sampling_rate=2), None,
                          "center", decoder=decoder)
    out = ds[0]
    assert isinstance(out, DecodeFailure), out
    assert out.path == str(path)
    assert "frames are 8192x8192" in out.reason and "per-clip limit" in out.reason and "scale=" in out.reason
    # 8 frames were exactly at the old pixel limit and passed, peaking at 4.2 GB: the guard is on memory now
    eight = VideoClipDataset([VideoSample(str(path), 0)], ClipSampling(num_frames=8, sampling_rate=2), None,
                             "center", decoder=decoder)[0]
    assert isinstance(eight, DecodeFailure) and "GB, over the 2.0 GB per-clip limit" in eight.reason, eight
    if decoder == "pyav":  # flashvid doctor says the same before training
        from flashvid.doctor import probe_file

        probe = probe_file(str(path), "train", "left", decoder, clip_frames=16)
        assert not probe.ok and probe.reason == out.reason


@pytest.mark.parametrize("decoder", DECODERS)
def test_huge_frames_are_scaled_down_while_decoding_when_the_transform_needs_little(odd_streams, decoder) -> None:
    """The same 8192x8192 file with the evaluation transform (short side 37): frames come out of the decoder at
    that short side (an 8-frame clip at full size peaked at 4.2 GB, now 1.2 GB: scripts/peak_clip_rss.py), so the
    clip is decoded instead of refused; the doctor, told the clip's size, agrees."""
    from flashvid.data import ClipSampling, VideoClipDataset, VideoSample
    from flashvid.data.transforms import ShortSideCenterCrop
    from flashvid.doctor import probe_file

    path = odd_streams["huge"]
    ds = VideoClipDataset([VideoSample(str(path), 0)], ClipSampling(num_frames=16, sampling_rate=2),
                          ShortSideCenterCrop(32, 37), "center", decoder=decoder)
    item = ds[0]
    assert isinstance(item, dict), item
    assert item["video"].shape == (16, 3, 32, 32)
    assert abs(item["video"].float().mean().item() - 90) < 2  # the flat grey, not padding or black
    assert probe_file(str(path), "train", "left", decoder, clip_frames=16, clip_short_side=37).ok


def test_timestamps_that_go_backwards_are_named_by_the_doctor(odd_streams) -> None:
    """Two recordings joined byte for byte restart their timestamps: decoders place frames by time, so the doctor
    says where the timestamps jump back and how to re-encode."""
    from flashvid.doctor import probe_file

    probe = probe_file(str(odd_streams["backwards"]), "train", "left")
    assert probe.ok and probe.note is not None
    assert "timestamps go backwards at packet 12" in probe.note and "ffmpeg -i IN -c:v libx264 OUT" in probe.note
    assert probe_file(str(odd_streams["thumbnail"]), "train", "left").note is None


def test_the_doctor_reads_files_with_non_utf8_tags(tmp_path) -> None:
    """A non-UTF-8 tag (a Latin-1 title, a Latin-1 language code) fails a plain ``av.open`` on PyAV <= 18: the
    doctor's timestamp check opened files that way, so it skipped such a file in silence and missed that its
    timestamps go backwards. The file is readable, and both its checks run."""
    from flashvid.doctor import probe_file

    joined = make_joined_ts_with_latin1_tag(tmp_path / "joined latin1.ts")
    probe = probe_file(str(joined), "train", "left", "pyav")
    assert probe.ok, probe.reason
    assert probe.keyframe_interval == 1
    assert probe.note is not None and "timestamps go backwards at packet" in probe.note, probe.note
    titled = make_frame_rate(tmp_path / "clip.mp4", 15)
    latin1 = tmp_path / "latin1_title.mp4"
    _ffmpeg("-i", str(titled), "-c", "copy", "-metadata", os.fsdecode(b"title=caf\xe9"), str(latin1))
    probe = probe_file(str(latin1), "train", "left", "pyav")
    assert probe.ok and probe.note is None and probe.keyframe_interval, probe
