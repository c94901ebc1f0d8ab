"""Class names that mean a direction turn horizontal flips off in training (a notice says how to force them), and
the doctor says so: on a real encoded dataset whose classes are named as in Jester."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from flashvid import VideoClassificationData
from flashvid.data.directions import mirrored_classes


@pytest.fixture(scope="module")
def swipes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``train/{swipe_left,swipe_right}`` and the same under ``val``: the demo's real left/right motion videos."""
    from flashvid.data import make_demo_dataset

    root = make_demo_dataset(tmp_path_factory.mktemp("swipes"), motions=("left", "right"),
                             videos_per_class={"train": 2, "val": 1}, num_frames=8, height=32, width=40)
    for split in ("train", "val"):
        for motion in ("left", "right"):
            (root / split / motion).rename(root / split / f"swipe_{motion}")
    return root


def test_direction_words_in_the_naming_styles_of_public_datasets() -> None:
    names = ["swipe_left", "Swiping Right", "Turning Hand Counterclockwise", "SwipeLeft", "counter-clockwise",
             "Pushing something from left to right", "turn left", "raise_right_hand"]
    kept = ["Sliding Two Fingers Up", "Rolling Hand Forward", "Pushing Hand Away", "upright", "copyright",
            "brightness", "archery", "Zooming In With Full Hand"]
    # a horizontal flip keeps up/down, forward/backward and towards/away: those classes keep their flips
    assert mirrored_classes(names + kept) == names


def test_training_turns_flips_off_with_a_notice(swipes: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="flashvid.data.datamodule"):
        dm = VideoClassificationData.from_folders(swipes / "train", swipes / "val", num_workers=0)
    assert dm.augmentation.hflip == 0.0
    [notice] = [r.getMessage() for r in caplog.records if "flips off" in r.getMessage()]
    assert "'swipe_left', 'swipe_right'" in notice and "data.augmentation.flip_directions=true" in notice
    assert "\n" not in notice
    dm.setup("fit")  # the GPU augmentation the training batches go through
    [crop] = [step for name, step in dm.batch_steps["train"].steps if name == "crop_flip_jitter"]
    assert crop.op.hflip == 0.0


def test_flips_forced_on_stay_on_and_the_doctor_warns(swipes: Path, caplog: pytest.LogCaptureFixture) -> None:
    from flashvid.doctor import diagnose_data

    with caplog.at_level(logging.WARNING, logger="flashvid.data.datamodule"):
        dm = VideoClassificationData.from_folders(swipes / "train", swipes / "val", num_workers=0,
                                                  augmentation={"flip_directions": True})
    assert dm.augmentation.hflip == 0.5 and not [r for r in caplog.records if "flips off" in r.getMessage()]
    report = diagnose_data(dm, progress=False, workers=1)
    assert [w for w in report.warnings if "forced on" in w and "'swipe_left'" in w], report.warnings


def test_the_doctor_says_training_turns_flips_off(swipes: Path) -> None:
    from flashvid.doctor import diagnose_data

    report = diagnose_data(VideoClassificationData.from_folders(swipes / "train", num_workers=0), progress=False,
                           workers=1)
    assert [w for w in report.warnings if "turns flips off" in w and "flip_directions=true" in w], report.warnings


def test_other_classes_and_evaluation_only_data_keep_the_setting(swipes: Path, tmp_path: Path) -> None:
    for motion in ("left", "right"):  # the same videos under names that say nothing about direction
        shutil.copytree(swipes / "train" / f"swipe_{motion}", tmp_path / "train" / f"class_{motion == 'left'}")
    assert VideoClassificationData.from_folders(tmp_path / "train").augmentation.hflip == 0.5
    assert VideoClassificationData.from_folders(test_folder=swipes / "val").augmentation.hflip == 0.5
