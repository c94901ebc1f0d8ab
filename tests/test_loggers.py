"""flashvid's CSV logger keeps a run's history through interruptions (the resume side is in test_resume.py)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from flashvid.loggers import CSVLogger


class Killed(BaseException):
    """Stands for a kill -9 landing while the file is being written."""


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_a_new_metric_key_never_leaves_metrics_csv_truncated(tmp_path, monkeypatch) -> None:
    """A new key (the first validation's) makes the file be written again with a wider header; a process killed
    during that write must leave the previous history whole, not a truncated file."""
    logger = CSVLogger(tmp_path, name="run", version=0)
    for step in range(5):
        logger.log_metrics({"train_loss": 1.0 / (step + 1)}, step=step)
    logger.save()
    path = Path(logger.experiment.metrics_file_path)
    before = _rows(path)
    assert len(before) == 5

    def killed_mid_write(self, rows):  # the header is out, the rows are not
        raise Killed

    monkeypatch.setattr(csv.DictWriter, "writerows", killed_mid_write)
    with pytest.raises(Killed):  # rows are written as they are logged (flush_logs_every_n_steps=1)
        logger.log_metrics({"val_acc": 0.5}, step=5)
    monkeypatch.undo()
    assert _rows(path) == before  # the history as it was before the interrupted write
