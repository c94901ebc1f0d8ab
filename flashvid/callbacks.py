"""Callbacks that keep a run alive through bad files and interruptions, and let it resume exactly.

:func:`robust_callbacks` returns the set a training run uses (the CLI adds them to every ``fit``):

- :class:`FailureReport` writes the files that could not be decoded (path and reason) to ``failures.json`` in the
  run folder when fitting, validating or testing ends, and when the run stops on an error; the record survives
  a resume.
- :class:`GracefulShutdown`: the first Ctrl-C (SIGINT) or a SIGTERM lets the current training step finish,
  saves ``last.ckpt`` and stops with exit status 130/143; a second Ctrl-C stops at once.
- :class:`ExactResume` saves the random number generators' states and the training loader's position in
  checkpoints and restores them when a resumed run starts, so it continues exactly as the uninterrupted one would.
- :class:`LabelCheck` refuses data whose classes differ from the model's.
- :class:`LastCheckpoint` writes ``last.ckpt`` every ``checkpoint_every_n_steps`` steps and at every epoch end
  (with :class:`~flashvid.checkpoint.AtomicCheckpointIO` a kill never leaves it half-written).
"""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import threading
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, WeightAveraging
from lightning.pytorch.utilities.exceptions import SIGTERMException

from .checkpoint import LAST

log = logging.getLogger(__name__)

FAILURES_FILE = "failures.json"


class TrainingInterrupted(SystemExit):
    """Raised after an interrupt has been turned into a saved checkpoint; exits with ``128 + signal``."""

    def __init__(self, signum: int, checkpoint: str | None):
        self.signum, self.checkpoint = signum, checkpoint
        super().__init__(128 + signum)


class ClassMismatchError(ValueError):
    """The model's classes are not the data's."""


def _run_dir(trainer: L.Trainer) -> Path:
    return Path(trainer.log_dir or trainer.default_root_dir)


def _checkpoint_dir(trainer: L.Trainer) -> Path:
    cb = trainer.checkpoint_callback
    if isinstance(cb, ModelCheckpoint) and cb.dirpath:
        return Path(cb.dirpath)
    return Path(trainer.default_root_dir) / "checkpoints"


class FailureReport(Callback):
    """Write ``pl_module.failure_report()`` (files that failed to decode, with reasons) as JSON in the run folder.

    Written when fit, validate or test ends and when the run stops on an exception (``status`` says which), so
    the record exists even for a run that failed because too many files were broken. The failures seen so far are
    kept in checkpoints, so a resumed run's report still lists those found before the interruption.
    """

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path) if path is not None else None
        self._pending: dict[str, Any] | None = None
        self.written: Path | None = None

    def _target(self, trainer: L.Trainer) -> Path:
        if self.path is None:
            return _run_dir(trainer) / FAILURES_FILE
        return self.path / FAILURES_FILE if self.path.is_dir() or not self.path.suffix else self.path

    def write(self, trainer: L.Trainer, pl_module: L.LightningModule, status: str, error: str | None = None) -> Path:
        report = {"status": status, **pl_module.failure_report()}
        if error:
            report["error"] = error
        target = self._target(trainer)
        if trainer.is_global_zero:
            tmp = target.with_name(f".{target.name}.tmp")
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                tmp.write_text(json.dumps(report, indent=2, ensure_ascii=False))
                os.replace(tmp, target)
            except OSError as e:
                tmp.unlink(missing_ok=True)
                if status == "finished":
                    raise
                # on the way out of a failed run (a full disk...): keep the original error in front
                log.warning("flashvid: could not write %s: %s", target, e)
            if report["num_failed"]:
                log.warning("flashvid: %d of %d videos could not be decoded and were skipped; list: %s",
                            report["num_failed"], report["num_seen"], target)
        self.written = target
        return target

    def state_dict(self) -> dict[str, Any]:
        module = getattr(self, "_module", None)
        if module is None:
            return {}
        return {"failed": dict(module.failed_files), "seen": sorted(module._seen)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = dict(state_dict) if state_dict else None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._module = pl_module

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._pending:
            pl_module.merge_failures(self._pending.get("failed", {}), self._pending.get("seen", []))
            self._pending = None

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.on_train_start(trainer, pl_module)  # a resume with nothing left to train never started training
        self.write(trainer, pl_module, "finished")

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.training and trainer.state.fn == "validate":
            self.write(trainer, pl_module, "finished")

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.write(trainer, pl_module, "finished")

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        interrupted = isinstance(exception, (KeyboardInterrupt, TrainingInterrupted, SIGTERMException))
        self.write(trainer, pl_module, "interrupted" if interrupted else "failed",
                   None if interrupted else f"{type(exception).__name__}: {exception}")


class GracefulShutdown(Callback):
    """Ctrl-C / SIGTERM: finish the current training step, save ``last.ckpt``, stop with status 130 / 143.

    Saving happens at the end of a training step (where ``ModelCheckpoint`` saves too), never inside an optimizer
    step or a validation, so the checkpoint resumes exactly. A signal during the last step of an epoch or during
    validation lets the epoch finish (its validation included) and stops at the epoch boundary, where ``last.ckpt``
    is the epoch-end checkpoint: Lightning cannot resume a checkpoint taken between an epoch's last step and its
    validation (it skips that validation and miscounts the next epoch). A second Ctrl-C stops at once, without
    saving. On one process SIGTERM is handled here rather than by Lightning, whose handler stops in the middle of
    a validation; under DDP Lightning's handler (which tells every rank) is kept.
    """

    def __init__(self, dirpath: str | os.PathLike | None = None, filename: str = LAST):
        self.dirpath = Path(dirpath) if dirpath is not None else None
        self.filename = filename
        self._requested: int | None = None
        self._previous: dict[int, Any] = {}
        self.saved: Path | None = None

    def _handle(self, signum: int, frame: Any) -> None:
        if self._requested is not None and signum == signal.SIGINT:
            self._restore()
            raise KeyboardInterrupt
        if self._requested is None:
            self._requested = signum
            log.warning("flashvid: %s received: finishing this step and saving a checkpoint%s",
                        signal.Signals(signum).name,
                        " (press Ctrl-C again to stop at once, without saving)" if signum == signal.SIGINT else "")

    def _install(self, signum: int) -> None:
        if signum not in self._previous:
            self._previous[signum] = signal.getsignal(signum)
        signal.signal(signum, self._handle)

    def _restore(self) -> None:
        # Only a handler that is still ours: after a fit, Lightning's teardown (which runs before on_fit_end and the
        # teardown hooks) has already put back the handlers from before the fit; putting back the one we replaced,
        # Lightning's SIGTERM notifier, left the process ignoring SIGTERM after every fit (a multiprocessing Pool
        # forked later then hung in terminate(): its workers did not die of SIGTERM).
        for signum, previous in self._previous.items():
            if signal.getsignal(signum) == self._handle:
                signal.signal(signum, previous)
        self._previous = {}

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._requested, self.saved = None, None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Installed here, after Lightning's signal connector recorded the handlers it restores when fit ends (it
        # does so before on_fit_end; see _restore): installed earlier, ours would outlive the fit. Lightning's own
        # SIGTERM handler is replaced on one process; under DDP it is kept (it tells every rank).
        if threading.current_thread() is not threading.main_thread():
            return
        self._install(signal.SIGINT)
        if trainer.world_size == 1:
            if trainer.received_sigterm:  # arrived during the sanity check
                self._requested = signal.SIGTERM
                trainer._signal_connector.received_sigterm = False
            self._install(signal.SIGTERM)

    def _pending_signal(self, trainer: L.Trainer) -> int | None:
        if self._requested is not None:
            return self._requested
        return signal.SIGTERM if trainer.received_sigterm else None

    def _save(self, trainer: L.Trainer) -> Path:
        path = (self.dirpath or _checkpoint_dir(trainer)) / self.filename
        trainer.save_checkpoint(path, weights_only=False)  # (False = the full training state, not just weights)
        self.saved = path
        return path

    def _stop(self, trainer: L.Trainer, signum: int, path: Path) -> None:
        log.warning("flashvid: %s: saved %s at step %d; resume with ckpt_path=%r (flashvid train ... resume=true)",
                    signal.Signals(signum).name, path, trainer.global_step, str(path))
        raise TrainingInterrupted(signum, str(path))

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        signum = self._pending_signal(trainer)
        if signum is None or (epoch_ends_here(trainer) and not max_steps_reached(trainer)):
            return  # the epoch's last step: stop after its validation, at the epoch-end checkpoint
        for cb in trainer.callbacks:  # an EMA later in the list has not taken this step in yet (it takes each once)
            if isinstance(cb, WeightAveraging):
                cb.on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        # what Lightning logs right after this hook: the resumed run starts at the next step and never logs it
        trainer._logger_connector.update_train_step_metrics()
        self._stop(trainer, signum, self._save(trainer))

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        signum = self._pending_signal(trainer)
        if signum is None:
            return
        last = next((cb for cb in trainer.checkpoint_callbacks if isinstance(cb, LastCheckpoint)), None)
        if last is not None and last._last_global_step_saved == trainer.global_step and last.last_model_path:
            path = Path(last.last_model_path)  # the epoch-end checkpoint just written
        else:
            path = self._save(trainer)
        self.saved = path
        self._stop(trainer, signum, path)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._restore()
        if isinstance(exception, SIGTERMException):
            if self.saved is None:  # Lightning raised it at a batch boundary before our step-end check saw it
                path = self._save(trainer)
                log.warning("flashvid: SIGTERM: saved %s at step %d; resume with ckpt_path=%r", path,
                            trainer.global_step, str(path))
            exception.code = 128 + signal.SIGTERM  # Lightning re-raises it: exit 143, not 0 (a finished run)
        elif isinstance(exception, KeyboardInterrupt):
            last = _checkpoint_dir(trainer) / self.filename
            where = f"the last checkpoint is {last}" if last.is_file() else "no checkpoint was written"
            log.warning("flashvid: stopped at once without saving; %s", where)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore()

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._restore()


def epoch_ends_here(trainer: L.Trainer) -> bool:
    """True at the end of an epoch's last training batch."""
    return bool(trainer.fit_loop.epoch_loop._num_ready_batches_reached())


def max_steps_reached(trainer: L.Trainer) -> bool:
    return trainer.max_steps is not None and 0 < trainer.max_steps <= trainer.global_step


def mark_epoch_completed(checkpoint: dict[str, Any]) -> None:
    """Record an epoch-end checkpoint's loops as between two epochs (as after Lightning's ``epoch_progress``
    ``increment_completed`` and the next epoch's reset), not as inside the epoch's end hooks.

    Lightning resumes the in-hook state through restart paths that, with ``max_steps`` set (iteration-based
    training, always "restarting"), skip the next epoch's counters and end the run an epoch early; from the
    between-epochs state every resume simply starts the next epoch.
    """
    fit = (checkpoint.get("loops") or {}).get("fit_loop")
    if not fit:
        return
    epochs = fit["epoch_progress"]
    for part in ("total", "current"):
        epochs[part]["completed"] = epochs[part]["processed"]

    def clear_current(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "current" and isinstance(value, dict):
                    for k in value:
                        value[k] = 0
                else:
                    clear_current(value)

    for key, value in fit.items():
        if key.startswith("epoch_loop.") and isinstance(value, dict):
            clear_current(value)
            if "is_last_batch" in value:
                value["is_last_batch"] = False
    val = fit.get("epoch_loop.val_loop.batch_progress")
    if isinstance(val, dict) and isinstance(val.get("total"), dict):
        for k in val["total"]:
            val["total"][k] = 0


class LastCheckpoint(ModelCheckpoint):
    """``checkpoints/last.ckpt``: every ``every_n_train_steps`` steps, at the step that reaches ``max_steps``, and
    at every epoch end (after that epoch's validation).

    Never after an epoch's last step, before its validation: Lightning 2.6 resumes such a checkpoint by skipping
    the validation and miscounting the next epoch, so that resumed run fails on ``EarlyStopping`` and so does every
    later resume from its checkpoints; the epoch-end save right after the validation stands for that step. One file,
    replaced atomically, with no ``last-v1.ckpt`` versions (a moved run directory keeps resuming from ``last.ckpt``).
    """

    def __init__(self, dirpath: str | os.PathLike | None, every_n_train_steps: int | None = None):
        super().__init__(dirpath=dirpath, filename="step{step:07d}", save_top_k=0, save_last=True,
                         auto_insert_metric_name=False, enable_version_counter=False)
        self.every = int(every_n_train_steps or 0)

    @property
    def state_key(self) -> str:
        return "LastCheckpoint"

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if self._should_skip_saving_checkpoint(trainer) or epoch_ends_here(trainer):
            return
        if max_steps_reached(trainer) or (self.every and trainer.global_step % self.every == 0):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # only after a complete epoch: a run stopped by max_steps mid-epoch keeps its step checkpoint
        if not self._should_skip_saving_checkpoint(trainer) and epoch_ends_here(trainer):
            self._at_epoch_end = True
            try:
                self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
            finally:
                self._at_epoch_end = False

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        if getattr(self, "_at_epoch_end", False):
            mark_epoch_completed(checkpoint)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        return

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        return


class ExactResume(Callback):
    """Keep what Lightning does not in checkpoints: RNG states and the training loader's position in its epoch.

    - The torch / Python / NumPy generator states are restored when the resumed run starts training (after the
      sanity check), so batch augmentation and dropout repeat exactly. The loaders draw their worker seeds from a
      generator of their own, so whether an epoch builds a new iterator (no workers, a resume) or reuses one
      (persistent workers) does not shift the global RNGs.
    - The position of the :class:`~flashvid.data.loader.ResumableDataLoader` is applied in ``on_train_start``,
      before the first batch is drawn. Lightning 2.6 would restore it itself, but skips that whenever
      ``configure_optimizers`` asks for ``trainer.estimated_stepping_batches`` (flashvid's schedules do): the
      loader is then built before the checkpoint's loop state is read and never gets it.
    Together with the restored weights, optimizer and loop progress, the resumed run ends as the uninterrupted one.

    Under DDP Lightning writes rank 0's state and every rank loads it. The loader position is every rank's (each
    skips within its own share, see :class:`~flashvid.data.loader.ShardedEpochSampler`). The RNG states are
    gathered from every rank when the checkpoint is written (Lightning builds it on all ranks) and each rank takes
    its own back, so a GPU's generator on rank 1 continues where rank 1's left off; resumed on a different number
    of processes, every rank takes rank 0's (with a warning).
    """

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None
        self._metrics: dict[str, float] = {}
        self._trainer: L.Trainer | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._trainer = trainer

    def state_dict(self) -> dict[str, Any]:
        state = rng_states()
        ranks = gather_rng_states()
        if ranks is not None:
            state["rank_rng"] = ranks
        loader = self._train_loader()
        if loader is not None:
            state["train_loader"] = loader.state_dict()
        if self._trainer is not None:
            state["callback_metrics"] = {str(k): float(v) for k, v in self._trainer.callback_metrics.items()}
        return state

    def _train_loader(self) -> Any:
        trainer = self._trainer
        if trainer is None or trainer.fit_loop._combined_loader is None:
            return None
        loader = trainer.train_dataloader
        return loader if hasattr(loader, "state_dict") and hasattr(loader, "load_state_dict") else None

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = dict(state_dict) if state_dict else None
        self._metrics = dict((state_dict or {}).get("callback_metrics") or {})

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        follow_moved_run_dir(trainer, checkpoint)
        from .loggers import CSVLogger

        for logger in trainer.loggers:  # before anything is logged: the history up to the checkpoint is kept
            if isinstance(logger, CSVLogger):
                logger.keep_history_before(int(checkpoint.get("global_step", 0)))

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # A resume of a run that had nothing left to train (killed after its last checkpoint) skips the training
        # loop, so nothing is logged: its final metrics are the checkpoint's, as the uninterrupted run's were.
        metrics, self._metrics = self._metrics, {}
        for key, value in metrics.items():
            trainer.callback_metrics.setdefault(key, torch.tensor(value))

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # After the sanity check (which Lightning runs with the RNG states isolated) and before the first batch is
        # drawn. Building a loader's iterator takes no number from the global RNGs (ResumableDataLoader has its
        # own generator), so nothing else runs between here and the next step, as in the uninterrupted run.
        self._metrics = {}  # training runs: it logs its own
        if not self._pending:
            return
        s, self._pending = self._pending, None
        done = trainer.fit_loop.epoch_loop.batch_progress.current.ready
        if 0 < done < trainer.num_training_batches:  # mid-epoch
            loader = self._train_loader()
            if loader is not None and s.get("train_loader"):
                loader.load_state_dict(s["train_loader"])
            else:
                log.warning("flashvid: the train loader cannot resume mid-epoch; the interrupted epoch restarts "
                            "from its first batch")
        set_rng_states(own_rng_states(s, trainer.global_rank, trainer.world_size))


def rng_states() -> dict[str, Any]:
    """This process's torch / Python / NumPy (and CUDA, once initialised) generator states, checkpoint-safe."""
    import numpy as np

    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": {"kind": str(kind), "keys": torch.from_numpy(keys.astype("int64")), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def gather_rng_states() -> list[dict[str, Any]] | None:
    """Every rank's :func:`rng_states`, in rank order, when several processes run (a collective: all ranks call
    it, as they all build a checkpoint); None in one process."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return None
    states: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(states, rng_states())
    return states


def own_rng_states(saved: dict[str, Any], rank: int, world_size: int) -> dict[str, Any]:
    """This rank's states from an :class:`ExactResume` state: its own entry when the checkpoint was written by as
    many processes, else the top-level ones (rank 0's, or the only process's)."""
    ranks = saved.get("rank_rng")
    if not ranks:
        return saved
    if len(ranks) == world_size:
        return ranks[rank]
    if rank == 0:
        log.warning("flashvid: the checkpoint was written by %d processes and this run has %d: every process "
                    "continues from rank 0's random generator states", len(ranks), world_size)
    return ranks[0]


def set_rng_states(s: dict[str, Any]) -> None:
    """Restore what :func:`rng_states` took (CUDA's only where CUDA is available)."""
    import numpy as np

    torch.set_rng_state(s["torch"])
    random.setstate(_as_tuple(s["python"]))
    n = s["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype("uint32"), n["pos"], n["has_gauss"], n["gauss"]))
    if "cuda" in s and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(s["cuda"])


def follow_moved_run_dir(trainer: L.Trainer, checkpoint: dict[str, Any]) -> None:
    """A run directory moved or copied since the checkpoint: point the checkpoint callbacks' saved paths into it.

    ``ModelCheckpoint`` forgets its best score and paths when its folder changed, so a resumed run in a moved
    directory would write ``best-v1.ckpt``/``last-v1.ckpt`` beside the old files and compare against no best.
    Called from ``on_load_checkpoint``, before the callbacks' states are loaded.
    """
    states = checkpoint.get("callbacks") or {}
    for cb in trainer.checkpoint_callbacks:
        state = states.get(cb.state_key) if isinstance(cb, ModelCheckpoint) and cb.dirpath else None
        old = state.get("dirpath") if isinstance(state, dict) else None
        if not old or str(old) == str(cb.dirpath):
            continue
        new = str(cb.dirpath)

        def moved(p: Any, old: str = str(old), new: str = new) -> Any:
            return new + p[len(old):] if isinstance(p, str) and p.startswith(old.rstrip(os.sep) + os.sep) else p

        state["dirpath"] = new
        for key in ("best_model_path", "kth_best_model_path", "last_model_path"):
            if key in state:
                state[key] = moved(state[key])
        if isinstance(state.get("best_k_models"), dict):
            state["best_k_models"] = {moved(k): v for k, v in state["best_k_models"].items()}
        log.info("flashvid: the run directory moved from %s to %s: continuing with the checkpoints here", old, new)


def _as_tuple(x: Any) -> Any:
    return tuple(_as_tuple(v) for v in x) if isinstance(x, (list, tuple)) else x


def check_labels(model_labels: list[str] | None, data_labels: list[str] | None, source: str = "the model",
                 checkpoint: str | None = None) -> None:
    """Raise :class:`ClassMismatchError`, naming the fix, when the model's and the data's classes differ."""
    if not model_labels or not data_labels or list(model_labels) == list(data_labels):
        return
    missing, extra = sorted(set(data_labels) - set(model_labels)), sorted(set(model_labels) - set(data_labels))
    detail = (f"the data has classes the model lacks {missing}" if missing else "") + (
        ("; " if missing else "") + f"the model has classes the data lacks {extra}" if extra else "")
    if not detail:
        detail = "same names in a different order"
    raise ClassMismatchError(
        f"{source} was trained on {len(model_labels)} classes {list(model_labels)[:10]} but the data has "
        f"{len(data_labels)} {list(data_labels)[:10]} ({detail}). Point the data at the same class folders, or "
        "fine-tune on the new classes by starting from the checkpoint's weights "
        f"(model.pretrained={checkpoint or '<checkpoint>'}: its backbone, a new head) instead of resuming it."
    )


class LabelCheck(Callback):
    """Refuse to fit/evaluate when the datamodule's classes differ from the model's."""

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        dm = trainer.datamodule
        check_labels(getattr(pl_module, "labels", None), getattr(dm, "labels", None) if dm is not None else None)


def robust_callbacks(run_dir: str | os.PathLike | None = None, checkpoint_every_n_steps: int | None = 200,
                     model_checkpoint: bool = True) -> list[Callback]:
    """The callbacks a flashvid training run uses for failed files, interruptions and exact resumes.

    ``run_dir``: where ``failures.json`` and ``checkpoints/`` go (default: the trainer's log dir).
    ``checkpoint_every_n_steps``: how often ``checkpoints/last.ckpt`` is rewritten (``None``: at epoch ends).
    ``model_checkpoint=False`` leaves checkpointing to a ``ModelCheckpoint`` of the caller's; give it
    ``save_last=True`` so Ctrl-C and resumes share its ``last.ckpt``.
    Use with ``Trainer(plugins=flashvid.checkpoint.checkpoint_plugins())``.
    """
    ckpt_dir = Path(run_dir) / "checkpoints" if run_dir is not None else None
    callbacks: list[Callback] = [FailureReport(run_dir), ExactResume(), LabelCheck(), GracefulShutdown(ckpt_dir),
                                 ShortEpochLogging()]
    if model_checkpoint:
        # save_top_k=0: only last.ckpt, no second copy of the same weights under a step name
        callbacks.append(LastCheckpoint(ckpt_dir, checkpoint_every_n_steps))
    return callbacks


class ShortEpochLogging(Callback):
    """Log every step when an epoch has fewer steps than ``log_every_n_steps``.

    Lightning sends per-step values (the training loss, the learning rate) to the loggers every N steps only, so a
    run of short epochs (a small data set: a few steps each, for hundreds of epochs) had no training loss or
    learning rate in metrics.csv and curves.png. Decided from the epoch's length alone, so a resumed run logs the
    same steps as an uninterrupted one (an epoch mean or an extra epoch-start row would not survive a mid-epoch
    resume exactly).
    """

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        steps = trainer.num_training_batches
        if isinstance(steps, int) and 0 < steps < trainer.log_every_n_steps:
            trainer.log_every_n_steps = 1
