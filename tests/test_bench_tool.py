"""``scripts/bench.py``, the benchmark tool, end to end on tiny inputs (in process: the tiny model, the demo
videos, a few steps): a subcommand measures its baseline in the same run, divides each row by it and writes the
JSON; bad options fail in one line before anything runs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
from benchkit.cli import main, subcommands  # noqa: E402


def test_every_subcommand_answers_help_without_running(capsys: pytest.CaptureFixture[str]) -> None:
    # the measurement scripts folded into the tool are subcommands (was scripts/measure_*.py)
    assert {"recipes", "backbones", "epochs", "frame-store"} <= set(subcommands())
    for name in subcommands():
        with pytest.raises(SystemExit) as e:
            main([name, "--help"])
        assert e.value.code == 0
        assert "--out" in capsys.readouterr().out


def test_train_end_to_end_with_its_model_only_baseline(demo_root: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """Two epochs of one step on the demo's train folder, with data options passed through as overrides."""
    rc = main(["train", "--out", str(tmp_path), "--model", "tiny", "--sets", str(demo_root / "train"),
               "--batch-size", "2", "--warmup", "1", "--steps", "2", "--min-timed", "1", "--workers", "0",
               "--steps-per-epoch", "1",
               "--epochs", "2", "--data-override", "data.skip_nonref=false data.num_frames=4"])
    assert rc == 0
    record = json.loads((tmp_path / "train.json").read_text())
    base = record["baselines"]["tiny_r2plus1d"]
    assert base["name"] == "model_only_training" and base["value"] > 0 and base["unit"] == "clips/s"
    [row] = record["rows"]
    assert row["baseline"] == "model_only_training" and row["ratio"] == round(row["value"] / base["value"], 3)
    assert row["config"]["steps_per_epoch"] == 1 and row["config"]["data_variant"].startswith("data.skip_nonref")
    assert row["steps"] == 1 + 2 * 1 and row["epochs"] >= 2  # the warm-up step, then two whole epochs timed
    assert not record["errors"] and record["machine"]["cpu_cores"]
    assert record["machine"]["h264_decode_ms_per_frame_456x256"] > 0  # the host's speed beside its figures
    out = capsys.readouterr().out
    assert f"x{row['ratio']:.3f} of model_only_training" in out and "BASELINE" in out


def test_decode_reports_the_frames_a_clip_decodes_beside_its_cpu_time(demo_root: Path, tmp_path: Path) -> None:
    """The frames the PyAV reader decoded per clip (a cost other jobs' load does not move), counted outside the
    timed clips: the non-reference skip never decodes more than decoding every frame from the keyframe does."""
    rc = main(["decode", "--out", str(tmp_path), "--sets", "", "--root", str(demo_root / "train"),
               "--variants", "pyav,pyav_skip_nonref", "--items", "3", "--rounds", "1"])
    assert rc == 0
    record = json.loads((tmp_path / "decode.json").read_text())
    [base] = record["baselines"].values()
    [row] = record["rows"]
    assert base["name"] == "pyav" and row["name"] == "pyav_skip_nonref" and base["value"] > 0
    assert base["frames_decoded_per_clip"] > 0
    assert 0 < row["frames_decoded_per_clip"] <= base["frames_decoded_per_clip"]


def test_nvdec_times_the_cpu_and_decodes_on_the_gpu_or_says_why_not(demo_root: Path, tmp_path: Path) -> None:
    """The CPU baseline decodes every asked frame as planes; an NVDEC mode either ran on the GPU (NV12 frames,
    never a CPU fallback) or is skipped with the reason (this machine has no GPU)."""
    rc = main(["nvdec", "--out", str(tmp_path), "--sets", str(demo_root / "train"), "--files", "raw",
               "--procs", "1", "--clips", "2", "--frames", "4"])
    assert rc == 0
    record = json.loads((tmp_path / "nvdec.json").read_text())
    [base] = record["baselines"].values()
    assert base["value"] > 0 and base["frames_per_clip"] == 4 and base["pixel_format"] == ["yuv420p"]
    for mode in ("nvdec", "nvdec_primary_ctx"):
        rows = [r for r in record["rows"] if r["name"] == mode]
        assert (rows and rows[0]["pixel_format"] == ["nv12"]) or record["skipped"][mode]


@pytest.mark.parametrize("argv, message", [
    (["--data-override", "data.no_such_option=1"], "data.no_such_option is not an option"),
    (["--sets", "synth:nope"], "--sets synth:nope: neither a folder nor a footage set"),
    (["--model", "no_such_model"], "--model no_such_model: not a registered backbone"),
])
def test_bad_options_fail_in_one_line_before_running(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                     argv: list[str], message: str) -> None:
    assert main(["train", "--out", str(tmp_path), "--model", "tiny", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_backbones_tiny_against_videomae_base(tmp_path: Path) -> None:
    """``backbones --tiny`` on the CPU: videomae_base at its test size is the baseline, the other a ratio to it."""
    assert main(["backbones", "--out", str(tmp_path), "--tiny", "--backbones", "tsm_resnet18"]) == 0
    record = json.loads((tmp_path / "backbones.json").read_text())
    base = record["baselines"]["speed"]
    assert base["name"] == "videomae_base" and base["value"] > 0 and base["frames"] and base["params_m"] > 0
    [row] = record["rows"]
    assert row["name"] == row["backbone"] == "tsm_resnet18" and row["value"] == row["clips_per_s"] > 0
    assert row["ratio"] == row["speed_ratio"] == round(row["value"] / base["value"], 3)
    assert record["tiny"] is True and record["baseline"] == "videomae_base" and record["batch_size"] == 2
    assert "memory" not in record["baselines"] and not record["errors"]  # peak memory is a GPU figure


def test_epochs_drained_vs_continuous_on_tiny_files(demo_root: Path, tmp_path: Path) -> None:
    """``epochs`` on the demo's train folder: the drained long-epoch baseline, each setting's ratio to it."""
    assert main(["epochs", "--out", str(tmp_path), "--train", str(demo_root / "train"), "--workers", "1",
                 "--batch-size", "2", "--batches", "6", "--repeats", "1"]) == 0
    record = json.loads((tmp_path / "epochs.json").read_text())
    base = record["baselines"]["loader"]
    assert base["name"] == "drained_39_batch_epochs" and base["value"] == record["baseline_clips_per_s"] > 0
    rows = {r["name"]: r for r in record["rows"] if r["group"] == "loader"}
    assert set(rows) == {"drained_3_batch_epochs", "continuous_3_batch_epochs", "continuous_39_batch_epochs"}
    for name, row in rows.items():
        assert row["ratio"] == record["ratios_to_baseline"][name] == round(row["value"] / base["value"], 3)
    assert record["results"]["single_clip_workers_first_batch_wait_s"] >= 0
    assert record["baselines"]["first batch wait"]["unit"] == "s" and not record["errors"]


def test_frame_store_against_the_video_copy(demo_root: Path, tmp_path: Path) -> None:
    """``frame-store`` on four demo videos: disk, CPU per clip and PSNR, each group against the video copy."""
    src = tmp_path / "src"
    for folder in sorted((demo_root / "train").iterdir())[:2]:
        (src / folder.name).mkdir(parents=True)
        for video in sorted(folder.iterdir())[:2]:
            (src / folder.name / video.name).symlink_to(video)
    assert main(["frame-store", str(src), "--out", str(tmp_path / "out"), "--data", str(tmp_path / "copies"),
                 "--short-side", "64", "--clips", "2", "--qualities", "75"]) == 0
    record = json.loads((tmp_path / "out" / "frame-store.json").read_text())
    assert record["files"] == 4 and not record["errors"]
    for group in ("disk", "cpu", "quality"):
        assert record["baselines"][group]["name"] == "video copy" and record["baselines"][group]["value"] > 0
    rows = {(r["group"], r["name"]): r for r in record["rows"]}
    disk = rows[("disk", "frame store")]
    assert disk["value"] == record["mb_per_min"]["frames"] and disk["ratio"] == round(
        disk["value"] / record["baselines"]["disk"]["value"], 3)
    assert rows[("cpu", "frame store, decoded here")]["value"] == record["cpu_ms_per_clip"]["frames_decoded"]
    assert rows[("quality", "jpeg q75")]["value"] == record["quality_sweep"]["jpeg q75"]["psnr"]


def test_own_fields_sit_beside_the_standard_ones_without_replacing_them(tmp_path: Path) -> None:
    from benchkit.record import Record

    record = Record("x", {}, tmp_path, argv=[])
    record.put(files=3, rows_seen=1)
    record.put(files=4)  # a subcommand's own field may be rewritten
    with pytest.raises(ValueError, match="rows is a standard field"):
        record.put(rows=[])
    data = json.loads((tmp_path / "x.json").read_text())
    assert data["files"] == 4 and data["rows"] == [] and data["subcommand"] == "x"


@pytest.mark.parametrize("argv, message", [
    (["frame-store", "NOPE"], "source NOPE: not a folder"),
    (["backbones", "--backbones", "no_such_model"], "--backbones no_such_model: not a registered backbone"),
    (["epochs", "--workers", "0"], "--workers must be at least 1"),
    (["recipes", "--data", "NOPE"], "--data NOPE: needs train/ and val/ class folders"),
])
def test_folded_subcommands_refuse_bad_input_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                         argv: list[str], message: str) -> None:
    argv = [a.replace("NOPE", str(tmp_path / "nope")) for a in argv]
    assert main([*argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert message.replace("NOPE", str(tmp_path / "nope")) in err and len(err.splitlines()) == 1


def test_decode_device_gpu_decodes_frame_stores_on_the_device(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """``--decode-device cpu,gpu`` is data.jpeg_decode=workers/device on frame stores; video files decode on the
    CPU, so gpu alone on them is refused in one line and left out of a matrix beside frame stores."""
    from benchkit import matrix
    from benchkit.cli import parser
    from benchkit.footage import FootageSet

    assert main(["loader", "--out", str(tmp_path), "--model", "tiny", "--sets", str(tmp_path),
                 "--decode-device", "gpu", "--prepare", "prepared"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--decode-device gpu: only frame stores" in err and len(err.splitlines()) == 1
    args = parser().parse_args(["loader", "--model", "tiny", "--sets", str(tmp_path), "--decode-device", "cpu,gpu",
                                "--prepare", "raw", "--prepare", "format=frames jpeg_quality=80"])
    configs = matrix.configs(args)
    assert [(c.store, c.decode_device) for c in configs] == [
        ("raw", "cpu"), ("format=frames jpeg_quality=80", "cpu"), ("format=frames jpeg_quality=80", "gpu")]
    sources = matrix.Sources(args, None)
    for c in configs:  # the footage and the store as if made: what is measured is the mapping
        sources.sets[c.set] = FootageSet(c.set, tmp_path)
        sources.stores[(c.set, c.store, c.model)] = {"train_folder": tmp_path / "store"}
    decode = [sources.data_kwargs(c).get("jpeg_decode") for c in configs]
    assert decode == [None, "workers", "device"] and "jpeg_decode" in matrix.data_options()


@pytest.mark.parametrize("variant, check", [
    ("fps29.97", lambda v: v["kinds"] == {"h264 86x48 29.97fps": 1}),  # NTSC: 30000/1001, as cameras write it
    ("portrait", lambda v: v["kinds"] == {"h264 48x86 30fps": 1}),
])
def test_synthetic_footage_variants(tmp_path: Path, variant: str, check) -> None:
    from types import SimpleNamespace

    from benchkit import footage

    args = SimpleNamespace(data=tmp_path, synth_height=48, synth_seconds=1, synth_classes=1, synth_per_class=1,
                           shared=tmp_path)
    fset = footage.get(f"synth:{variant}", args)
    desc = footage.describe(fset.train)
    assert desc["files"] == 1 and check(desc), desc


def test_overrides_are_parsed_as_hydra_writes_them() -> None:
    from benchkit import overrides

    assert overrides.parse("data.a=1 +data.b.c=x data.d=[1,2] data.e=null data.f=true", "data.", "t") == {
        "a": 1, "b": {"c": "x"}, "d": [1, 2], "e": None, "f": True}
    slug = overrides.slug("data.clips_per_video=2 data.keyframe_aligned=true")
    assert slug == "clips_per_video-2-keyframe_aligned-true"


def test_step_clock_reports_pinned_blocks_made_inside_the_timed_steps() -> None:
    """The first row of a run page-locked 51 new pinned blocks inside its timed steps (1.2-1.4 s, none in later
    rows): the record says how many blocks the timed part made, and where steps waited."""
    from types import SimpleNamespace

    from benchkit.timing import StepClock

    def drive(made: list[int], warmup: int, gpu: bool = True) -> dict:
        counts = iter(made)
        clock = StepClock(warmup, pool=lambda: {"num_host_alloc": next(counts), "host_alloc_time.total": 0}
                          if gpu else None)
        trainer = SimpleNamespace(should_stop=False)
        for step in range(len(made)):
            clock.on_train_batch_start(trainer, None, None, step)
            clock.on_train_batch_end(trainer, None, None, None, step)
        return clock.summary(clips_per_step=4)

    growing = [0, 2, 4, 6, 8, 10, 11, 12, 12, 12, 12, 12]  # the pool grows until step 7
    assert drive(growing, warmup=3)["pinned_blocks_made_timed"] == 6  # steps 3..11: from 6 blocks to 12
    summary = drive(growing, warmup=7)
    assert summary["pinned_blocks_made_timed"] == 0 and summary["steps_timed"] == 4
    assert all(step > 7 for step, _ in summary["long_waits"])
    summary = drive(growing, warmup=3, gpu=False)
    assert summary["steps_timed"] == 8 and "pinned_blocks_made_timed" not in summary  # no GPU: nothing to say
