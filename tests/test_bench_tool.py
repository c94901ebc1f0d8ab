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
    out = capsys.readouterr().out
    assert f"x{row['ratio']:.3f} of model_only_training" in out and "BASELINE" in out


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
