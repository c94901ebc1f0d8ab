"""``bench.py pretrain`` on real folders (``--train/--test/--unlabelled``), at CPU toy scale on encoded videos: the
curve of pretraining lengths against scratch at the same time, and the test folder's files kept out of pretraining
unless ``--pretrain-on-test`` asks for them."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
from benchkit.cli import main  # noqa: E402
from benchkit.commands.pretrain import pretraining_videos  # noqa: E402


@pytest.fixture(scope="module")
def footage(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Class folders train/val/test (2/1/1 videos of 4 classes, 32x40 px) and a loose folder of unlabelled videos."""
    from flashvid.data import make_demo_dataset

    root = tmp_path_factory.mktemp("pretrain_footage")
    make_demo_dataset(root, videos_per_class={"train": 2, "val": 1, "test": 1}, num_frames=16, height=32, width=40)
    return root


def _real(paths: list[str]) -> set[str]:
    return {os.path.realpath(p) for p in paths}


def test_test_videos_enter_pretraining_only_when_asked(footage: Path) -> None:
    """An unlabelled folder holding the test folder (the whole dataset) still leaves the test files out; with
    include_test they are in, each file once."""
    from flashvid.data.sources import list_videos

    train, val, test = (list_videos(footage / s) for s in ("train", "val", "test"))
    videos, report = pretraining_videos(footage / "train", [footage], footage / "test", include_test=False)
    assert _real(videos) == _real(train + val) and len(videos) == len(train) + len(val)
    assert not _real(videos) & _real(test)
    assert report["test_videos_included"] is False and report["videos_from_test_folder"] == 0
    assert report["test_files_dropped"] == len(test) and report["duplicates_dropped"] == len(train)

    videos, report = pretraining_videos(footage / "train", [footage / "val"], footage / "test", include_test=True)
    assert _real(videos) == _real(train + val + test) and len(videos) == len(train + val + test)
    assert report["test_videos_included"] is True and report["videos_from_test_folder"] == len(test)


def test_real_folders_curve_end_to_end(footage: Path, tmp_path: Path) -> None:
    """Two checkpoints of one pretraining run, each fine-tuned and set against scratch given its pretraining time
    in extra epochs; the control; the JSON names the pretraining set."""
    assert main(["pretrain", "--out", str(tmp_path), "--tiny", "--train", str(footage / "train"), "--test",
                 str(footage / "test"), "--unlabelled", str(footage), "--seeds", "0", "--pretrain-epochs", "2",
                 "--curve", "0.5", "1", "--finetune-epochs", "1"]) == 0
    record = json.loads((tmp_path / "pretrain.json").read_text())
    info = record["info"]
    assert info["mode"] == "real" and info["curve_epochs"] == [1, 2] and not record["errors"]
    assert info["pretraining_set"]["test_videos_included"] is False
    assert info["pretraining_set"]["videos"] == info["train_videos"] + 4 and info["test_videos"] == 4
    [run] = info["runs"]
    assert run["pretrain"]["epochs"] == 2 and not run["skipped"]
    assert [p["pretrain_epochs"] for p in run["points"]] == [2, 1]  # the whole pretraining first
    for point in run["points"]:
        tuned, scratch = point["pretrained_finetune"], point["scratch"]
        assert tuned["epochs"] == 1 and 0 <= tuned["test_acc"] <= 1 and 0 <= scratch["test_acc"] <= 1
        extra = round(point["pretrain_seconds"] / tuned["steady_epoch_seconds"])
        assert scratch["epochs"] == 1 + extra  # the pretraining time, spent on more scratch epochs
        assert point["gpu_seconds"]["pretrained_arm"] == round(point["pretrain_seconds"] + tuned["seconds"], 2)
    assert run["points"][0]["pretrain_seconds"] > run["points"][1]["pretrain_seconds"] > 0
    assert run["scratch_same_epochs"]["epochs"] == 1
    assert [p["pretrain_epochs"] for p in info["summary"]["curve"]] == [1, 2]
    assert {r["group"] for r in record["rows"]} == {"pretrain 1 epochs", "pretrain 2 epochs", "control"}


@pytest.mark.parametrize("argv, message", [
    (["--train", "nowhere"], "--train nowhere: not a folder"),
    (["--unlabelled", "x"], "--unlabelled and --pretrain-on-test are for real mode"),
    (["--curve", "0", "1"], "--curve [0.0, 1.0]: fractions"),
])
def test_bad_real_mode_options_fail_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                argv: list[str], message: str) -> None:
    assert main(["pretrain", "--out", str(tmp_path), "--tiny", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err
