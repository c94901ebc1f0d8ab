"""Lightning's CSV logger, made to survive interruptions: a resumed run's ``metrics.csv`` equals the uninterrupted
run's.

Lightning's logger deletes an existing ``metrics.csv`` when it starts, so after ``resume=true`` the history (and
``curves.png``, drawn from it) began at the resumed step; and it writes rows every 100 steps, so a kill lost the rows
since the last write. :class:`CSVLogger` writes every row as it is logged and, in a resumed run, keeps the rows of
the steps before the checkpoint and drops those logged after it (the resumed run logs them again).
:class:`~flashvid.callbacks.ExactResume` tells it the checkpoint's step, before anything is logged.
"""

from __future__ import annotations

import csv
import os
from typing import Any

from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.loggers import CSVLogger as LightningCSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter


class _HistoryWriter(ExperimentWriter):
    """Lightning's writer, except that an existing ``metrics.csv`` is not deleted at once (Lightning creates the
    writer before a checkpoint is restored): :meth:`keep_history_before` keeps its rows of the earlier steps, else
    the first write replaces it, as Lightning's does."""

    def __init__(self, log_dir: str):
        self._old_file = False
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:
        self._old_file = self._fs.isfile(self.metrics_file_path)

    def keep_history_before(self, step: int) -> None:
        if not self._old_file:
            return
        self._old_file = False
        with self._fs.open(self.metrics_file_path, "r", newline="") as f:
            rows = [r for r in csv.DictReader(f) if r.get("step") and int(float(r["step"])) < step]
        if not rows:
            self._fs.rm_file(self.metrics_file_path)
            return
        # the header an uninterrupted run has at this point: the keys these rows hold
        self.metrics_keys = sorted({k for r in rows for k, v in r.items() if k is not None and v not in ("", None)})
        self._replace_file(rows, self.metrics_keys)

    def _rewrite_with_new_header(self, fieldnames: list[str]) -> None:
        with self._fs.open(self.metrics_file_path, "r", newline="") as f:
            rows = list(csv.DictReader(f))
        self._replace_file(rows, fieldnames)

    def _replace_file(self, rows: list[dict[str, Any]], fieldnames: list[str]) -> None:
        """Write ``metrics.csv`` anew under a temporary name, then rename it over the old one: Lightning truncates
        the file and writes it again whenever a new key appears (the first validation, say), so a kill in between
        lost the run's whole history (seen once in the kill -9 soak: 20 rows where the uninterrupted run has 21)."""
        tmp = f"{self.metrics_file_path}.tmp"
        with self._fs.open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fieldnames, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
        self._fs.mv(tmp, self.metrics_file_path)

    def save(self) -> None:
        if self._old_file and self.metrics:  # a new run: the old file goes (Lightning's behaviour)
            self._fs.rm_file(self.metrics_file_path)
            self._old_file = False
        super().save()


class CSVLogger(LightningCSVLogger):
    """``lightning.pytorch.loggers.CSVLogger`` whose ``metrics.csv`` a resumed run continues (see the module)."""

    def __init__(self, save_dir: str | os.PathLike, *args: Any, flush_logs_every_n_steps: int = 1, **kwargs: Any):
        super().__init__(save_dir, *args, flush_logs_every_n_steps=flush_logs_every_n_steps, **kwargs)
        self._keep_before: int | None = None

    def keep_history_before(self, step: int) -> None:
        """Resuming at global step ``step``: keep the existing rows of the steps before it, drop the later ones.
        Call it before anything is logged."""
        self._keep_before = int(step)
        if isinstance(self._experiment, _HistoryWriter):  # None on ranks other than 0
            self._experiment.keep_history_before(self._keep_before)

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is not None:
            return self._experiment  # type: ignore[return-value]
        self._fs.makedirs(self.root_dir, exist_ok=True)
        self._experiment = _HistoryWriter(self.log_dir)
        if self._keep_before is not None:
            self._experiment.keep_history_before(self._keep_before)
        return self._experiment
