"""The ``flashvid`` command as a user runs it: real subprocesses on real encoded demo videos.

One small training run (tiny model, 2 epochs) feeds the test and predict checks; the error checks assert the exit
status and that the message names the valid choices without a traceback. The in-process checks at the end keep
the config tree consistent with the code (registry names, _target_ arguments, recipes, packaging).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"
LABELS = ["clockwise", "counterclockwise", "left", "right"]


def flashvid(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``python -m flashvid ARGS`` importing this checkout, as a user would run it (no debug variables)."""
    env = {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "FLASHVID_DEBUG")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    return subprocess.run([sys.executable, "-m", "flashvid", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def ok(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert proc.returncode == 0, f"exit {proc.returncode}\n--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n" \
                                 f"{proc.stderr[-5000:]}"
    return proc


def python_in_terminal(argv: list[str], cwd: Path, columns: int, timeout: float = 300) -> tuple[int, str]:
    """``python ARGV`` importing this checkout on a pseudo terminal ``columns`` wide: the exit status and what it
    wrote there (stdout and stderr both), raw."""
    import fcntl
    import pty
    import select
    import struct
    import termios
    import time

    env = {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "FLASHVID_DEBUG", "NO_COLOR")}
    env.update(PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
               PYTHONUNBUFFERED="1", COLUMNS=str(columns), LINES="50", TERM="xterm-256color")
    main_fd, term_fd = pty.openpty()
    fcntl.ioctl(term_fd, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    proc = subprocess.Popen([sys.executable, *argv], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                            stdout=term_fd, stderr=term_fd)
    os.close(term_fd)
    raw, deadline = b"", time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if select.select([main_fd], [], [], 0.5)[0]:
                try:
                    data = os.read(main_fd, 1 << 16)
                except OSError:  # EIO: the terminal's other side is closed, the command has exited
                    break
                if not data:
                    break
                raw += data
            elif proc.poll() is not None:
                break
    finally:
        os.close(main_fd)
        if proc.poll() is None:
            proc.kill()
    return proc.wait(), raw.decode("utf-8", "replace")


def terminal_screen(raw: str, columns: int) -> list[str]:
    """The lines a terminal ``columns`` wide shows after ``raw``: the control sequences rich's live display uses
    (carriage return, erase line, cursor up) applied, colours dropped, long lines wrapped."""
    import re

    rows: list[list[str]] = [[]]
    row = col = 0
    for tok in re.findall(r"\x1b\[[0-9;?]*[A-Za-z]|\r|\n|[^\x1b\r\n]", raw):
        if tok == "\r":
            col = 0
        elif tok == "\n":
            row, col = row + 1, 0
        elif tok.endswith("K"):  # erase to the end of the line
            del rows[row][col:]
        elif tok.endswith("A"):  # cursor up
            row = max(0, row - int(tok[2:-1] or 1))
        elif not tok.startswith("\x1b"):
            if col >= columns:
                row, col = row + 1, 0
            while len(rows) <= row:
                rows.append([])
            line = rows[row]
            line.extend(" " * (col + 1 - len(line)))
            line[col] = tok
            col += 1
        while len(rows) <= row:
            rows.append([])
    return ["".join(r).rstrip() for r in rows]


def data_args(root: Path) -> list[str]:
    return [f"data.train_folder={root / 'train'}", f"data.val_folder={root / 'val'}",
            f"data.test_folder={root / 'test'}"]


@pytest.fixture(scope="module")
def trained(demo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``flashvid train`` with overrides: tiny model, 2 epochs, batch 4, into a chosen run directory."""
    work = tmp_path_factory.mktemp("cli")
    run = work / "run"
    proc = ok(flashvid("train", *data_args(demo_root), "model=tiny", "trainer.max_epochs=2", "data.batch_size=4",
                       "model.learning_rate=3e-3", f"hydra.run.dir={run}", cwd=work))
    (work / "console.txt").write_text(proc.stdout + proc.stderr)
    return run


@pytest.mark.slow
def test_train_prints_each_line_once_and_no_third_party_warning(trained: Path) -> None:
    """Lightning's lines came twice (its own handler and Hydra's), with its LeafSpec deprecation on torch 2.14."""
    console = (trained.parent / "console.txt").read_text()
    lines = [line for line in console.splitlines() if "Seed set to" in line or "GPU available" in line]
    assert len(lines) == 2, console[-3000:]
    assert "Warning" not in console and "deprecated" not in console, console[-3000:]


TRAIN_COLUMNS, PREDICT_WIDTHS = 100, (80, 120)


@pytest.fixture(scope="module")
def terminal_session(demo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One fresh interpreter on one pseudo terminal (one import of torch for both commands): ``flashvid train`` at
    100 columns, then ``flashvid predict`` of that run's checkpoint at 80 and at 120 columns, the window resized
    between the commands as a user's is; each command reads the width anew. The exit status, each command's raw
    screen output (by width), the predict arguments and the long file names predicted (two of the test videos,
    as symlinks under long folder names)."""
    tmp = tmp_path_factory.mktemp("terminal")
    run = tmp / "run"
    train = ["train", f"data.train_folder={demo_root / 'train'}", f"data.val_folder={demo_root / 'val'}",
             "model=tiny", "trainer.max_epochs=1", "data.batch_size=8", "data.num_frames=4", "data.crop_size=32",
             "logger=none", f"hydra.run.dir={run}"]
    folder = tmp / "footage_from_the_parking_lot_cameras_recorded_in_the_summer_of_2024"
    names = []
    for i, video in enumerate(sorted((demo_root / "test" / "left").iterdir())[:2]):
        name = f"camera_{i}_in_the_parking_lot/north_camera_left_turn_{i}{video.suffix}"
        (folder / name).parent.mkdir(parents=True)
        (folder / name).symlink_to(video)
        names.append(name)
    predict = ["predict", f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}", f"inputs=[{folder}]",
               f"output={tmp / 'preds.json'}", f"hydra.run.dir={tmp / 'predict'}"]
    commands = [(TRAIN_COLUMNS, train), *((columns, predict) for columns in PREDICT_WIDTHS)]
    code = ("import fcntl, os, struct, sys, termios\nfrom flashvid.cli import main\n"
            f"for columns, args in {commands!r}:\n"
            "    fcntl.ioctl(1, termios.TIOCSWINSZ, struct.pack('HHHH', 50, columns, 0, 0))\n"
            "    os.environ['COLUMNS'] = str(columns)\n"
            "    print(f'SCREEN OF {columns} COLUMNS', flush=True)\n"
            "    if main(args):\n"
            "        sys.exit(f'exit status of {args[0]} at {columns} columns')\n")
    status, raw = python_in_terminal(["-c", code], cwd=tmp, columns=TRAIN_COLUMNS)
    screens = {}
    for shown in raw.split("SCREEN OF ")[1:]:
        columns, _, rest = shown.partition(" COLUMNS")
        screens[int(columns)] = rest.partition("\n")[2]
    return {"status": status, "raw": raw, "screens": screens, "predict": predict, "names": names}


@pytest.mark.slow
def test_train_in_a_terminal_keeps_log_lines_out_of_the_progress_bar(terminal_session: dict[str, Any]) -> None:
    """Under a live rich progress bar, log records went straight to the terminal: into the bar's line, and the
    bar, redrawn below them, stayed on screen twice. Each log line is now on its own line, the last epoch's bar
    once."""
    assert TRAIN_COLUMNS in terminal_session["screens"], terminal_session["raw"][-3000:]
    screen = terminal_screen(terminal_session["screens"][TRAIN_COLUMNS], TRAIN_COLUMNS)
    shown = "\n".join(screen)
    assert "exit status of train" not in terminal_session["raw"], shown[-3000:]
    bars = [line for line in screen if "━" in line]
    assert len([line for line in bars if line.startswith("Epoch 0/0")]) == 1, shown[-3000:]
    assert not [line for line in bars if "INFO" in line or "][" in line], shown[-3000:]  # no log text in a bar
    stopped = [line for line in screen if "`Trainer.fit` stopped" in line]
    assert len(stopped) == 1 and stopped[0].startswith("INFO: `Trainer.fit` stopped"), shown[-3000:]


def _logging_state() -> dict[str, Any]:
    """Level, propagate flag and handlers of every logger; each handler's stream (a file handler's: open or not),
    level and filters."""
    import logging

    def stream(h: logging.Handler) -> Any:
        return h.stream is not None if isinstance(h, logging.FileHandler) else getattr(h, "stream", None)

    loggers = {name: lg for name, lg in logging.Logger.manager.loggerDict.items() if isinstance(lg, logging.Logger)}
    loggers[""] = logging.getLogger()
    return {name: (lg.level, lg.propagate, lg.disabled, [(h, stream(h), h.level, list(h.filters)) for h in lg.handlers])
            for name, lg in loggers.items()}


def test_main_leaves_logging_as_it_found_it(demo_root: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """An in-process `flashvid train` pointed Lightning's own console handlers (which outlive the command) at
    whatever sys.stderr is at each write, and left them so: a later seed_everything's "Seed set to 1" then landed
    in the caller's current stderr (another test's capture: an order dependence in the suite)."""
    import contextlib
    import io
    import logging

    import lightning as L

    from flashvid.cli import main

    # as in a script that imported Lightning at its top: its console handlers hold the sys.stderr of that moment
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        for h in logging.getLogger(name).handlers:
            if type(h) is logging.StreamHandler:
                monkeypatch.setattr(h, "stream", sys.stderr)
    before = _logging_state()
    assert main(["train", *data_args(demo_root), "model=tiny", "trainer.max_epochs=1", "data.batch_size=8",
                 "data.num_frames=4", "data.crop_size=32", "trainer.limit_train_batches=1",
                 "trainer.limit_val_batches=1", "trainer.num_sanity_val_steps=0", "logger=none",
                 "test_after_training=false", f"hydra.run.dir={tmp_path / 'run'}"]) == 0
    after = _logging_state()  # loggers made by modules the command imported are theirs
    changed = {name: (was, after[name]) for name, was in before.items() if after[name] != was}
    assert not changed, "\n".join(f"{name!r}: {was} -> {now}" for name, (was, now) in changed.items())
    later = io.StringIO()
    with contextlib.redirect_stderr(later), contextlib.redirect_stdout(later):
        L.seed_everything(1)
    assert later.getvalue() == ""


@pytest.mark.slow
def test_train_writes_run_directory(trained: Path) -> None:
    """Resolved config, logs, best + last checkpoints and metrics.json (with the test of the best checkpoint)."""
    config = (trained / "config.yaml").read_text()
    assert "backbone: tiny_r2plus1d" in config and "${" not in config  # resolved
    assert (trained / ".hydra" / "overrides.yaml").is_file()
    assert (trained / "train.log").is_file()
    assert (trained / "csv" / "metrics.csv").is_file()
    assert any((trained / "tensorboard").glob("events.out.tfevents.*"))
    best, last = trained / "checkpoints" / "best.ckpt", trained / "checkpoints" / "last.ckpt"
    assert best.is_file() and last.is_file()
    m = json.loads((trained / "metrics.json").read_text())
    assert m["labels"] == LABELS and m["backbone"] == "tiny_r2plus1d"
    assert m["epochs"] == 2 and m["global_step"] == 2 * (24 // 4)  # 24 train videos, batch 4, drop_last
    assert Path(m["best_checkpoint"]) == best and Path(m["last_checkpoint"]) == last
    # 8 validation videos, fewer than min_val_videos: best by val/loss (flashvid/validation_policy.py)
    assert m["best_by"] == "val/loss" and m["best_score"] > 0 and m["best_val_acc"] is None
    assert set(m["per_class_accuracy"]["test"]) == set(LABELS)
    assert set(m["test"]) >= {"test/acc", "test/mean_class_acc"}
    # 4 classes: no top-5 accuracy (always 1) in the metrics, the logged columns or the summary
    assert not any("acc5" in k for k in [*m["test"], *m["final"]])
    assert "acc5" not in (trained / "csv" / "metrics.csv").read_text().splitlines()[0]
    assert "top-1" in (trained.parent / "console.txt").read_text()
    assert "top-5" not in (trained.parent / "console.txt").read_text()
    # one line saying which recipe parts were on, from the built objects
    recipe = [line for line in (trained / "train.log").read_text().splitlines() if "flashvid train: recipe:" in line]
    assert len(recipe) == 1 and "no mixup/CutMix" in recipe[0] and "no EMA" in recipe[0], recipe
    assert "1 clip per video" in recipe[0] and "test views 1 clip(s) x 1 crop(s)" in recipe[0], recipe
    assert m["failed_files"]["num_seen"] >= 24 and m["failed_files"]["num_failed"] == 0


@pytest.mark.slow
def test_train_and_predict_through_pyav_when_torchcodec_cannot_load(demo_root: Path, tmp_path: Path,
                                                                    env_without_torchcodec: dict[str, str]) -> None:
    """Without FFmpeg's shared libraries torchcodec cannot load: ``flashvid train`` and ``predict`` (decoder=auto)
    still run end to end, through PyAV, and the log says which decoder and why. Both commands run in one fresh
    interpreter (where torchcodec's import fails), one after the other as ``main`` calls: one interpreter start less."""
    run = tmp_path / "run"
    env = dict(env_without_torchcodec, PYTHONUNBUFFERED="1")
    folder = demo_root / "test" / "left"
    train = ["train", f"data.train_folder={demo_root / 'train'}", "model=tiny", "trainer.max_epochs=1",
             "data.batch_size=8", "data.num_frames=4", "data.crop_size=32", "data.num_workers=0",
             "test_after_training=false", "callbacks=none", "logger=none", f"hydra.run.dir={run}"]
    predict = ["predict", f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}", f"inputs=[{folder}]",
               f"output={tmp_path / 'preds.json'}", f"hydra.run.dir={tmp_path / 'predict'}"]
    # resolve_decoder logs its choice once per process: cleared, so that predict's log says it again
    code = ("import sys; from flashvid.cli import main; from flashvid.data.decoding import resolve_decoder; "
            f"sys.exit(main({train!r}) or resolve_decoder.cache_clear() or print('PREDICT', flush=True) "
            f"or main({predict!r}))")
    proc = ok(subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                             timeout=600, stdin=subprocess.DEVNULL))
    log = (run / "train.log").read_text()
    assert "flashvid decoder: pyav (torchcodec unavailable: OSError: libavutil.so.59" in log, log[-2000:]
    m = json.loads((run / "metrics.json").read_text())
    assert m["global_step"] > 0 and m["failed_files"]["num_seen"] > 0 and m["failed_files"]["num_failed"] == 0
    predicted = proc.stdout.partition("PREDICT")[2] + (tmp_path / "predict" / "predict.log").read_text()
    assert "flashvid decoder: pyav" in predicted
    preds = json.loads((tmp_path / "preds.json").read_text())
    assert [Path(p["path"]).name for p in preds] == sorted(p.name for p in folder.iterdir())
    assert all(p["label"] in LABELS and not p.get("error") for p in preds)


@pytest.mark.slow
def test_resume_continues_the_run_from_its_last_checkpoint(trained: Path, demo_root: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """``resume=true`` in a finished run's directory trains on from last.ckpt: one more epoch, not three."""
    import shutil

    from flashvid.cli import main

    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    assert main(["train", *data_args(demo_root), "model=tiny", "trainer.max_epochs=3", "data.batch_size=4",
                 "model.learning_rate=3e-3", "test_after_training=false", f"hydra.run.dir={run}",
                 "resume=true"]) == 0
    assert "resuming from" in "".join(capsys.readouterr())
    m = json.loads((run / "metrics.json").read_text())
    assert m["epochs"] == 3 and m["global_step"] == 3 * (24 // 4)
    assert main(["train", *data_args(demo_root), "model=tiny", f"hydra.run.dir={tmp_path / 'empty'}",
                 "resume=true"]) != 0
    err = capsys.readouterr().err
    assert "holds no checkpoint" in err and "Traceback" not in err


@pytest.mark.slow
def test_test_reports_multiview_video_accuracy(trained: Path, demo_root: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """``flashvid test`` on a test folder holding only some classes, in another order: indices follow the
    checkpoint's; 2 clips x 3 crops per video."""
    only = tmp_path / "subset"
    for cls in ("right", "clockwise"):  # two of the four classes
        (only / cls).mkdir(parents=True)
        for f in (demo_root / "test" / cls).iterdir():
            (only / cls / f.name).symlink_to(f)
    from flashvid.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["test", f"ckpt_path={trained / 'checkpoints' / 'best.ckpt'}", f"data.test_folder={only}",
                 "data.num_clips=2", "data.num_crops=3", f"hydra.run.dir={tmp_path / 'test'}"]) == 0
    stdout = capsys.readouterr().out
    r = json.loads((tmp_path / "test" / "test_metrics.json").read_text())
    assert r["num_videos"] == 4 and r["views_per_video"] == {"num_clips": 2, "num_crops": 3}
    assert 0.0 <= r["top1"] <= 1.0 and 0.0 <= r["mean_class_accuracy"] <= 1.0
    assert "top5" not in r and "top-5" not in stdout and "top-4" not in stdout  # 4 classes
    assert r["num_classes"] == 4 and r["failed_files"]["num_failed"] == 0
    assert "top-1 accuracy" in stdout and "2 clip(s) x 3 crop(s)" in stdout


@pytest.mark.slow
def test_predict_prints_table_and_writes_json(trained: Path, demo_root: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """Files and folders in input order; an unreadable file gets an error entry and does not stop the others."""
    folder, one = demo_root / "test" / "left", sorted((demo_root / "test" / "right").iterdir())[0]
    missing = tmp_path / "missing.mp4"
    out = tmp_path / "preds.json"
    from flashvid.cli import main

    monkeypatch.chdir(tmp_path)
    code = main(["predict", f"ckpt_path={trained / 'checkpoints' / 'last.ckpt'}", f"inputs=[{folder},{one},{missing}]",
                 "top_k=3", f"output={out}", f"hydra.run.dir={tmp_path / 'predict'}"])
    proc = capsys.readouterr()
    assert code == 3, proc.err[-2000:]  # written, but one file failed: the exit status says so
    assert "1 of" in proc.err and "Traceback" not in proc.err
    results = json.loads(out.read_text())
    expected = sorted(str(p) for p in folder.iterdir()) + [str(one), str(missing)]
    assert [r["path"] for r in results] == expected
    for r in results[:-1]:
        assert r["label"] in LABELS and r["label"] == r["top_k"][0]["label"]
        scores = [t["score"] for t in r["top_k"]]
        assert len(scores) == 3 and scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1 + 1e-5
    assert results[-1]["label"] is None and results[-1]["error"]
    assert "prediction" in proc.out and "unreadable" in proc.out
    assert f"left{os.sep}{sorted(folder.iterdir())[0].name}" in proc.out and f"right{os.sep}{one.name}" in proc.out


@pytest.mark.slow
def test_predict_table_fits_the_terminal(terminal_session: dict[str, Any], tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """At 80 and 120 columns (and in a pipe) each file is one table row within the width, long paths shortened in
    the middle so the file name keeps its extension; the table folded file names mid-extension, at 80 every row."""
    names, args = terminal_session["names"], terminal_session["predict"]

    def rows(screen: list[str], columns: int) -> list[str]:
        shown = [line for line in screen if line[:1] and line[0] in "┏┃┡│└" or line.startswith("flashvid predict:")]
        assert len(shown) > 5 and all(len(line) <= columns for line in shown), "\n".join(screen)
        table = [line for line in screen if line.startswith("│")]
        assert len(table) == len(names), "\n".join(screen)  # one row per file: nothing folded
        return [line.split("│")[1].strip() for line in table]

    # both widths in the terminal session's interpreter, after its train (one import of torch less)
    assert terminal_session["status"] == 0, terminal_session["raw"][-3000:]
    assert set(PREDICT_WIDTHS) <= set(terminal_session["screens"]), terminal_session["raw"][-3000:]
    for columns in PREDICT_WIDTHS:
        screen = terminal_screen(terminal_session["screens"][columns], columns)
        for cell, name in zip(rows(screen, columns), names):
            head, dots, tail = cell.partition("…")
            assert cell == name if columns == 120 else (dots and name.startswith(head) and tail.endswith(
                "/" + Path(name).name)), cell
    from flashvid.cli import main

    monkeypatch.delenv("COLUMNS", raising=False)  # not a terminal (pytest's captured stdout): the fixed width
    monkeypatch.chdir(tmp_path)
    assert main([*args[:-1], f"hydra.run.dir={tmp_path / 'predict'}"]) == 0
    assert rows(capsys.readouterr().out.splitlines(), 120) == names


@pytest.mark.slow
def test_multirun_sweeps_two_values(demo_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    """``-m`` with two learning rates: two run directories, each with its own resolved config and metrics."""
    from flashvid.cli import main

    sweep = tmp_path / "sweep"
    monkeypatch.chdir(tmp_path)
    assert main(["train", "-m", *data_args(demo_root), "model=tiny", "model.learning_rate=1e-3,4e-3",
                 "trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1",
                 "trainer.num_sanity_val_steps=0", "test_after_training=false", "logger=csv",
                 "callbacks=model_checkpoint", f"hydra.sweep.dir={sweep}"]) == 0
    assert "Launching 2 jobs" in "".join(capsys.readouterr())
    for job, lr in (("0", "0.001"), ("1", "0.004")):
        assert f"learning_rate: {lr}" in (sweep / job / "config.yaml").read_text()
        m = json.loads((sweep / job / "metrics.json").read_text())
        assert m["global_step"] == 2 and m["test"] is None
        assert (sweep / job / "checkpoints" / "best.ckpt").is_file()


def test_bad_override_is_a_clear_error(tmp_path: Path) -> None:
    """A misspelt key: exit status 2, the valid keys in one message, no traceback, nothing written."""
    proc = flashvid("train", "model=tiny", "model.learnin_rate=1e-3", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "unknown key 'model.learnin_rate'. Did you mean model.learning_rate?" in proc.stderr
    assert "Valid keys under 'model':" in proc.stderr and "weight_decay" in proc.stderr
    assert "Traceback" not in proc.stderr and not list(tmp_path.iterdir())


def test_unknown_backbone_is_a_clear_error(demo_root: Path, tmp_path: Path) -> None:
    """A backbone name the registry does not know: exit 2, close matches and the full list, no traceback."""
    proc = flashvid("train", "model=generic", "model.backbone=x3d_xxs", *data_args(demo_root),
                    f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "unknown backbone 'x3d_xxs'" in proc.stderr and "Did you mean x3d_xs" in proc.stderr
    assert "tiny_r2plus1d" in proc.stderr and "videomae_base" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "run" / "checkpoints").exists()


# ------------------------------------------------------------------------------------------------ in-process
# The same entry point, called in this process: the cases below fail or finish before any training, so they need
# no fresh interpreter (each subprocess pays a multi-second import).
@pytest.mark.parametrize("args, expected", [
    (["train", "model=x3d_xxs"], ["unknown option model=x3d_xxs", "Did you mean model=x3d_xs?", "tiny",
                                  "videomae_base"]),
    (["train", "trainer=ddp", "trainer.devicez=2"], ["unknown key 'trainer.devicez'", "trainer.devices"]),
    (["test", "ckpt_pth=x.ckpt"], ["unknown key 'ckpt_pth'", "Did you mean ckpt_path?"]),
    (["predict", "inputs=[a.mp4]", "top=3"], ["unknown key 'top'", "top_k"]),
    (["train", "data=csv", "data.train_folder=x"], ["unknown key 'data.train_folder'", "train_file"]),
    (["train", "data=demo", "data.generate={videos_per_class:3}"],
     ["data.generate={videos_per_class:3}: 'data.generate' has no key 'videos_per_class'",
      "++data.generate={videos_per_class:3}", "+data.generate.videos_per_class=VALUE"]),
    (["trian"], ["unknown command 'trian'. Did you mean 'train'?"]),
    ([], ["usage: flashvid <command>"]),
])
def test_command_line_mistakes(args: list[str], expected: list[str], tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Unknown group options, keys per command and commands: exit 2 with the valid choices."""
    from flashvid.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err
    for text in expected:
        assert text in err, err
    assert not list(tmp_path.iterdir())


FOCAL = """
from torch import nn

from flashvid import VideoClassifier


class FocalClassifier(VideoClassifier):
    def configure_head(self, backbone):
        backbone.head = nn.Sequential(nn.Dropout(0.1), nn.Linear(backbone.head.in_features, self.num_classes))
"""


def test_a_subclass_checkpoint_is_read_back_as_its_class(demo_root: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """README "Subclassing": train with model._target_=<subclass> (its own head), then test, predict and export
    read the checkpoint back when given that class; without it, one line naming the class and the option."""
    from flashvid.cli import main

    (tmp_path / "focalpkg.py").write_text(FOCAL)
    monkeypatch.syspath_prepend(str(tmp_path))
    target = "model._target_=focalpkg.FocalClassifier"
    assert main(["train", *data_args(demo_root), "model=tiny", target, "trainer.max_epochs=1", "data.batch_size=8",
                 "test_after_training=false", "logger=none", f"hydra.run.dir={tmp_path / 'run'}"]) == 0
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    capsys.readouterr()

    test = ["test", f"ckpt_path={ckpt}", f"data.test_folder={demo_root / 'test'}"]
    assert main([*test, f"hydra.run.dir={tmp_path / 'no-class'}"]) == 2
    err = capsys.readouterr().err
    assert "focalpkg.FocalClassifier" in err and "model._target_=focalpkg.FocalClassifier" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert main([*test, target, f"hydra.run.dir={tmp_path / 'test'}"]) == 0
    assert json.loads((tmp_path / "test" / "test_metrics.json").read_text())["num_videos"] == 8
    assert main(["predict", f"ckpt_path={ckpt}", f"inputs=[{demo_root / 'test' / 'left'}]", target,
                 f"output={tmp_path / 'preds.json'}", f"hydra.run.dir={tmp_path / 'p'}"]) == 0
    assert all(r["label"] in LABELS for r in json.loads((tmp_path / "preds.json").read_text()))
    assert main(["export", f"ckpt_path={ckpt}", f"out={tmp_path / 'export'}", target,
                 f"hydra.run.dir={tmp_path / 'e'}"]) == 0

    import torch

    from flashvid.export import load_exported
    from flashvid.loading import load_classifier

    model = load_classifier(ckpt, cls="focalpkg.FocalClassifier")
    assert type(model).__name__ == "FocalClassifier" and isinstance(model.backbone.head, torch.nn.Sequential)
    exported = load_exported(tmp_path / "export", cls=type(model))
    video = torch.randint(0, 255, (1, 8, 3, 64, 64), dtype=torch.uint8)
    torch.testing.assert_close(exported(video), model.eval()(video))
    with pytest.raises(Exception, match="model._target_=focalpkg.FocalClassifier"):
        load_exported(tmp_path / "export")


def test_help_and_mistakes_answer_without_importing_torch(tmp_path: Path) -> None:
    """``--help``, ``train --help`` (groups and the composed config, with the overrides given) and a config mistake
    run in a fresh interpreter without importing torch, Lightning or transformers: they answer in well under a
    second (scripts/time_help.sh prints the times)."""
    run = tmp_path / "run"
    code = ("import sys; from flashvid.cli import main; codes = [main(a) for a in "
            "(['--help'], ['train', 'model=tiny', '--help'], ['train', 'model.learnin_rate=1'], "
            f"['backbones', 'pattern=x3d_*'], ['train', 'model=generic', 'model.backbone=x3d_xxs', "
            f"'hydra.run.dir={run}'], ['train', 'data.train_folder={tmp_path / 'nope'}', 'hydra.run.dir={run}'])]; "
            "print('CODES', codes, 'HEAVY', sorted(set(sys.modules) & {'torch', 'lightning', 'transformers'}))")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert "CODES [0, 0, 2, 0, 2, 2] HEAVY []" in proc.stdout, proc.stdout + proc.stderr
    assert "model: c2d_r50, " in proc.stdout and "backbone: tiny_r2plus1d" in proc.stdout  # groups; model=tiny used
    assert "Did you mean model.learning_rate?" in proc.stderr
    assert "x3d_m" in proc.stdout  # the backbones table, from the catalog
    assert "unknown backbone 'x3d_xxs'" in proc.stderr and "Did you mean x3d_xs" in proc.stderr
    assert f"data.train_folder={tmp_path / 'nope'} does not exist" in proc.stderr
    assert {p.name for p in tmp_path.iterdir()} <= {"run"} and not (run / "checkpoints").exists()


@pytest.mark.skipif(__import__("importlib.util").util.find_spec("wandb") is not None, reason="wandb is installed")
def test_logger_without_its_package_fails_before_any_work(tmp_path: Path) -> None:
    """``logger=wandb`` without wandb: one line naming the package and the other loggers, before the data, the model
    or Lightning are loaded."""
    run = tmp_path / "run"
    code = ("import sys; from flashvid.cli import main; "
            f"code = main(['train', 'data=demo', 'logger=[csv,wandb]', 'hydra.run.dir={run}']); "
            "print('CODE', code, 'HEAVY', sorted(set(sys.modules) & {'torch', 'lightning'}))")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert "CODE 2 HEAVY []" in proc.stdout, proc.stdout + proc.stderr
    assert "logger wandb needs the wandb package" in proc.stderr and "logger=none" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "demo_data").exists()


def test_catalog_matches_the_registry() -> None:
    """flashvid/models/catalog.json (what ``flashvid backbones`` and the backbone check read without torch) is the
    registry's own summary of every entry; after adding or changing a backbone, regenerate it with
    ``python -m flashvid.models.factory``."""
    from flashvid.models.catalog import catalog
    from flashvid.models.factory import registry_catalog

    assert list(catalog()) == registry_catalog(), "stale catalog: run python -m flashvid.models.factory"


def test_help_into_a_closed_pipe_is_quiet(tmp_path: Path) -> None:
    """``flashvid predict --help | head -0``: the reader is gone before the help is written; no traceback, and the
    exit status a shell gives a command that SIGPIPE stopped."""
    read, write = os.pipe()
    os.close(read)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    try:
        proc = subprocess.run([sys.executable, "-m", "flashvid", "predict", "--help"], cwd=tmp_path, env=env,
                              stdout=write, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write)
    assert proc.stderr == "" and proc.returncode == 141, proc.stderr


def test_backbone_kwargs_mapping_override_builds_the_backbone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """``model.backbone_kwargs={width:8}`` (no ``+``) used to fail "Key 'width' is not in struct", with Hydra
    suggesting a ``+`` form that fails too: it reaches the backbone's builder."""
    from flashvid.cli import main
    from flashvid.commands.config import _compose, build, config_dir

    monkeypatch.chdir(tmp_path)
    assert main(["train", "model=tiny", "model.backbone_kwargs={width:8}", "--cfg", "job"]) == 0
    assert "width: 8" in capsys.readouterr().out
    cfg = _compose(config_dir(), "train", ["model=tiny", "model.backbone_kwargs={width:8}"])
    model = build(cfg.model, "model", labels=["a", "b"])
    assert model.backbone.head.in_features == 8 * 8  # the tiny net's last stage is 8 x width wide


def test_typo_in_a_config_file_is_caught(tmp_path: Path) -> None:
    """A key no _target_ accepts (e.g. from a user's own YAML or +key=) names the valid arguments."""
    from flashvid.cli import ConfigError, check_arguments

    with pytest.raises(ConfigError, match=r"unknown key model\.learning_rat for flashvid\.VideoClassifier\. "
                                          r"Did you mean: learning_rat -> learning_rate\?"):
        check_arguments({"_target_": "flashvid.VideoClassifier", "backbone": "tiny_r2plus1d",
                         "learning_rat": 0.1}, "model")
    with pytest.raises(ConfigError, match=r"data\.augmentation\.hflipp .*Valid keys: .*hflip"):
        check_arguments({"_target_": "flashvid.cli.demo_data", "batch_size": 2, "train_folder": "x",
                         "augmentation": {"_target_": "flashvid.data.Augmentation", "hflipp": 0.0}}, "data")


def test_backbones_lists_input_needs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    """``flashvid backbones format=json``: every entry with its clip needs and the config that selects it."""
    from flashvid.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["backbones", "format=json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert {"tiny_r2plus1d", "x3d_xs", "videomae_base", "slowfast_r50"} <= set(rows)
    tiny = rows["tiny_r2plus1d"]
    assert (tiny["frames"], tiny["sampling_rate"], tiny["crop_size"], tiny["config"]) == (8, 2, 64, "model=tiny")
    assert rows["videomae_base"]["weights"] == "MCG-NJU/videomae-base-finetuned-kinetics"
    assert rows["slowfast_r50"]["slowfast_alpha"] == 4
    assert not list(tmp_path.iterdir())  # no run directory or log for a listing
    assert main(["backbones", "pattern=x3d_*"]) == 0
    table = capsys.readouterr().out
    assert "x3d_m" in table and "model=x3d_m" in table and "videomae" not in table


def test_doctor_is_wired(demo_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``flashvid doctor`` calls flashvid.commands.doctor.run_doctor(cfg); while flashvid.doctor is missing it says
    so (exit 2)."""
    from flashvid.cli import main

    code = main(["doctor", *data_args(demo_root), "model=tiny", "hydra/job_logging=none", "hydra/hydra_logging=none",
                 f"hydra.run.dir={tmp_path / 'run'}"])
    err = capsys.readouterr().err
    if (REPO / "flashvid" / "doctor.py").exists() or (REPO / "flashvid" / "doctor").is_dir():
        assert "not available" not in err
    else:
        assert code == 2 and "`flashvid doctor` is not available" in err and "Traceback" not in err


# ------------------------------------------------------------------------------------------------ config tree
def compose(name: str, overrides: list[str]) -> Any:
    from flashvid.cli import _compose, register_resolvers

    register_resolvers()
    return _compose(CONF, name, overrides)


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml") if not p.stem.startswith("_"))


def test_every_registry_entry_is_a_model_option() -> None:
    """``model=<entry>`` for every backbone of the registry, generated from the catalog (no yaml per entry): generic's
    keys, the entry's backbone, its weights when it has some, its family's defaults; the short name ``tiny`` too."""
    from omegaconf import OmegaConf

    from flashvid.commands.config import group_options
    from flashvid.models import get_backbone_spec
    from flashvid.models.catalog import catalog_entries

    # the built-in entries, as the catalog lists them (tests register their own backbones in the live registry)
    builtin = [e["name"] for e in catalog_entries()]
    generic = OmegaConf.load(CONF / "model" / "generic.yaml")
    assert set(builtin) | {"generic", "tiny"} <= set(group_options(CONF, "model"))
    for name in builtin:
        model = compose("train", [f"model={name}"]).model
        assert set(model) == set(generic) and model.backbone == name, name
        assert model.pretrained is (get_backbone_spec(name).weights is not None), name
    assert compose("train", ["model=tiny"]).model.backbone == "tiny_r2plus1d"
    assert compose("train", ["model=videomae_base"]).model.learning_rate == 5e-5  # the transformers family's rate
    assert compose("train", ["model=x3d_xs"]).model.learning_rate == generic.learning_rate
    for yaml in (CONF / "model").glob("*.yaml"):  # a yaml stays only for settings an entry's data does not give
        assert yaml.stem not in builtin, f"{yaml} repeats the generated model={yaml.stem}"


def test_a_new_catalog_entry_needs_no_model_yaml(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """An entry added to the registry (and so to catalog.json) is a model option with nothing else to write; a yaml
    of an entry's name is used instead of the generated option (Hydra refuses a name stored in both places)."""
    from flashvid.commands import model_configs
    from flashvid.models import catalog as catalog_module

    known = catalog_module.catalog()
    entry = {**known[0], "name": "vjepa2_vitl", "family": "transformers", "weights": "x/y"}
    monkeypatch.setattr(catalog_module, "catalog", lambda: (*known, entry))
    options = model_configs.model_configs()
    assert options["vjepa2_vitl"] == {"defaults": ["generic", "_self_"], "backbone": "vjepa2_vitl",
                                      "pretrained": True, "learning_rate": 5e-5}
    assert model_configs.select_with("vjepa2_vitl") == "model=vjepa2_vitl"
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "vjepa2_vitl.yaml").write_text("defaults: [generic, _self_]\nbackbone: vjepa2_vitl\n")
    assert "vjepa2_vitl" not in model_configs.model_configs(tmp_path) and "x3d_xs" in options


@pytest.mark.parametrize("group", ["data", "trainer", "finetune", "callbacks", "logger", "experiment"])
def test_every_group_option_composes_and_validates(group: str) -> None:
    """Each option composes with train.yaml and every _target_ in it accepts the keys it is given."""
    from omegaconf import OmegaConf

    from flashvid.cli import check_arguments

    for name in options(group):
        cfg = compose("train", [f"{group}={name}"])
        for section in ("data", "model", "trainer", "finetune", "callbacks", "logger"):
            if cfg.get(section) is not None:
                check_arguments(OmegaConf.to_container(cfg[section], resolve=False), section)


@pytest.mark.parametrize("name", ["default", "cpu", "gpu", "ddp", "multinode", "fsdp"])
def test_trainer_strategies_instantiate(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The strategy objects of the trainer configs build (no GPU needed to construct them)."""
    from hydra.utils import instantiate

    monkeypatch.setenv("SLURM_NNODES", "2")
    monkeypatch.setenv("SLURM_NTASKS_PER_NODE", "4(x2)")
    cfg = compose("train", [f"trainer={name}"]).trainer
    strategy = instantiate(cfg.strategy) if not isinstance(cfg.strategy, str) else cfg.strategy
    assert strategy is not None
    if name == "multinode":
        assert (cfg.num_nodes, cfg.devices) == (2, 4)
    if name == "cpu":
        assert cfg.precision == "32-true"


def test_ucf101_videomae_recipe_follows_the_paper() -> None:
    """VideoMAE's UCF101 fine-tuning script: the recipe components are on, at its values."""
    cfg = compose("train", ["experiment=ucf101_videomae"])
    a, m = cfg.data.augmentation, cfg.model
    assert (a.mixup_alpha, a.cutmix_alpha, a.auto_augment) == (0.8, 1.0, "rand-m7-n4-mstd0.5-inc1")
    assert (m.label_smoothing, m.drop_path_rate, cfg.finetune.decay, m.weight_decay) == (0.1, 0.2, 0.7, 0.05)
    assert (cfg.data.clips_per_video, cfg.data.num_clips, cfg.data.num_crops) == (2, 5, 3)
    assert cfg.trainer.max_epochs == 100 and cfg.callbacks.early_stopping is None
    # VideoMAE's stride counts the video's own frames: 4 frames of a 25 fps UCF101 video, not 4 at 30 fps
    from flashvid.data import VideoClassificationData

    dm = VideoClassificationData(sampling_rate=cfg.data.sampling_rate, target_fps=cfg.data.target_fps)
    assert dm.data_config.sampling.stride(25.0) == cfg.data.sampling_rate


def test_small_data_recipe() -> None:
    cfg = compose("train", ["experiment=small_data"])
    assert cfg.model.pretrained is False and cfg.model.ema_decay and cfg.model.class_weights == "auto"
    assert cfg.data.augmentation.auto_augment and cfg.data.augmentation.mixup_alpha > 0
    assert (cfg.data.num_clips, cfg.data.num_crops) == (1, 3) and cfg.callbacks.early_stopping is None


def test_ucf101_videomae_recipe_matches_the_tutorial() -> None:
    """VideoMAE-base from MCG-NJU/videomae-base, 16 frames at rate 4, 224 px, lr 5e-5, batch 8, 4 epochs, 10%
    linear warm-up."""
    cfg = compose("train", ["experiment=ucf101_videomae_tutorial"])
    assert cfg.model.backbone == "videomae_base" and cfg.model.pretrained == "MCG-NJU/videomae-base"
    assert (cfg.data.num_frames, cfg.data.sampling_rate, cfg.data.crop_size, cfg.data.batch_size) == (16, 4, 224, 8)
    assert (cfg.model.learning_rate, cfg.model.warmup_ratio, cfg.model.scheduler) == (5e-5, 0.1, "linear")
    assert cfg.trainer.max_epochs == 4 and cfg.data.source == "ucf101"


def test_demo_recipe() -> None:
    """The demo recipe: tiny model, demo data, no flips (the classes are directions), and its own settings win over
    the defaults it overrides."""
    cfg = compose("train", ["experiment=demo"])
    plain = compose("train", ["data=demo", "model=tiny"])
    assert cfg.model.backbone == "tiny_r2plus1d" and cfg.data.source == "demo"
    assert cfg.data.augmentation.hflip == 0.0 != plain.data.augmentation.hflip
    assert cfg.data.batch_size != plain.data.batch_size and cfg.trainer.max_epochs != plain.trainer.max_epochs


def test_wheel_package_list_is_complete() -> None:
    """pyproject lists packages explicitly (to ship conf/ as flashvid.conf): every flashvid subpackage is there."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+; the package supports 3.10
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "flashvid").rglob("__init__.py")}
    assert found | {"flashvid.conf"} == listed, f"add {sorted(found - listed)} to [tool.setuptools] packages"


def test_the_library_never_imports_the_command_line() -> None:
    """Layer 4 (cli.py, commands/) sits on top: no module below it imports it, at module level or inside a function
    (scripts/import_graph.py reads the imports; docs/architecture.md draws the layers)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("import_graph", REPO / "scripts" / "import_graph.py")
    assert spec and spec.loader
    graph = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(graph)
    edges = graph.graph()
    command_line = {room for room in set(edges) | {b for bs in edges.values() for b in bs}
                    if room == "cli" or room.split(".")[0] == "commands"}
    assert command_line >= {"cli", "commands.train", "commands.prepare", "commands.pretrain"}
    upward = sorted((a, b) for a, bs in edges.items() for b in bs
                    if b in command_line and a not in command_line and a != "__main__")
    assert upward == [], upward



def test_no_circle_of_imports_and_the_data_side_asks_the_models_in_one_place() -> None:
    """No circle of imports anywhere: ``data.clip_config`` once looked backbones up in the registry, which imports
    it, and the registry imported the families that register into it (now :mod:`flashvid.models.factory` does, as
    ``timm.models`` does). ``flashvid.data`` sits below the models, and only ``prepare`` asks them, for
    ``prepare(backbone=...)``'s torch-free clip settings."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("import_graph", REPO / "scripts" / "import_graph.py")
    assert spec and spec.loader
    graph = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(graph)
    edges = graph.graph()
    assert graph.circles(edges) == []
    into_models = sorted((a, b) for a, bs in edges.items() for b in bs
                         if a.split(".")[0] == "data" and b.split(".")[0] == "models")
    assert into_models == [("data.prepare", "models.clip_settings")], into_models
    import flashvid.models

    assert sorted(flashvid.models.__all__) == sorted(flashvid.models._HOME)  # every public name has its module

def test_the_library_never_reads_hydra() -> None:
    """The library takes built objects (a datamodule, samples, options), not Hydra configs: only the command line
    (cli.py, commands/) imports hydra, at module level or inside a function (docs/architecture.md)."""
    import ast

    below = [p for p in (REPO / "flashvid").rglob("*.py")
             if p.name != "cli.py" and "commands" not in p.relative_to(REPO / "flashvid").parts]
    found = []
    for path in below:
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            found += [f"{path.relative_to(REPO)}:{node.lineno} {n}" for n in names if n.split(".")[0] == "hydra"]
    assert found == [], found
