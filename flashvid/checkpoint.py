"""Checkpoints that survive a ``kill -9`` and load without running code.

- :class:`AtomicCheckpointIO` (a Lightning ``CheckpointIO`` plugin) writes each checkpoint to a hidden temporary
  file in the target folder, fsyncs it and renames it over the target: a kill at any moment leaves either the old
  ``last.ckpt`` or the new one, never a truncated file. It also turns config objects (OmegaConf containers, paths)
  into plain types on the way out, so every flashvid checkpoint loads with ``torch.load(weights_only=True)``, and it
  always loads that way.
- :func:`load_checkpoint` is that safe load with a clear refusal for pickles that carry code.
- :func:`find_resume_checkpoint` finds the checkpoint to resume a run folder from.
- Failures say what to do in one line (:class:`CheckpointError`): a full disk, a truncated file, a
  state_dict where a checkpoint is needed.
"""

from __future__ import annotations

import errno
import os
import pickle
import shutil
from collections.abc import Mapping
from enum import Enum
from pathlib import Path, PurePath
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

LAST = "last.ckpt"


class CheckpointError(Exception):
    """A checkpoint that cannot be used: its message names the file and what to do (one line, no traceback)."""


class UnsafeCheckpointError(CheckpointError, pickle.UnpicklingError):
    """A checkpoint holds pickled Python objects beyond tensors and plain containers: loading it could run code."""


class CorruptCheckpointError(CheckpointError, RuntimeError):
    """A checkpoint that is truncated or not a checkpoint at all."""


class CheckpointWriteError(CheckpointError, OSError):
    """A checkpoint could not be written (disk full, read-only folder); the previous file is untouched."""


def to_safe(obj: Any) -> Any:
    """``obj`` with every value ``torch.load(weights_only=True)`` cannot rebuild turned into a plain one.

    Mappings (OmegaConf ``DictConfig`` included) become dicts, other sequences lists (tuples stay tuples), paths
    strings, enums their values, numpy arrays and scalars tensors and Python numbers. Anything else is refused with
    its location, so an unloadable checkpoint is caught when it is written, not when it is needed.
    """
    return _safe(obj, "checkpoint")


def _safe(obj: Any, where: str) -> Any:
    if obj is None or isinstance(obj, (bool, int, float, complex, str, bytes, torch.Tensor, torch.dtype,
                                       torch.device, torch.Size)):
        return obj
    if isinstance(obj, Mapping):
        if type(obj).__module__.startswith("omegaconf"):
            from omegaconf import OmegaConf

            obj = OmegaConf.to_container(obj, resolve=True)
        return {k: _safe(v, f"{where}[{k!r}]") for k, v in obj.items()}
    if isinstance(obj, tuple) and not hasattr(obj, "_fields"):
        return tuple(_safe(v, f"{where}[{i}]") for i, v in enumerate(obj))
    if isinstance(obj, (list, tuple, set, frozenset)) or type(obj).__module__.startswith("omegaconf"):
        if type(obj).__module__.startswith("omegaconf"):
            from omegaconf import OmegaConf

            obj = OmegaConf.to_container(obj, resolve=True)
        return [_safe(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, PurePath):
        return str(obj)
    if isinstance(obj, Enum):
        return _safe(obj.value, where)
    if type(obj).__module__ == "numpy":
        import numpy as np

        return torch.from_numpy(np.array(obj)) if isinstance(obj, np.ndarray) else obj.item()
    if hasattr(obj, "to_dict") and callable(obj.to_dict):  # flashvid's DataConfig and the like
        return _safe(obj.to_dict(), where)
    raise TypeError(
        f"{where} holds a {type(obj).__module__}.{type(obj).__qualname__}, which a weights_only checkpoint cannot "
        "hold: keep hyperparameters and callback states to numbers, strings, lists, dicts and tensors"
    )


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu", mmap: bool = False) -> dict[str, Any]:
    """``torch.load(path, weights_only=True)``, refusing with a clear message a pickle that would run code."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    try:
        ck = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UnsafeCheckpointError(
            f"refusing to load {str(path)!r}: it holds pickled Python objects that could run code when loaded "
            f"({first[:200]}). flashvid checkpoints never need that; only a checkpoint from a source you trust should, "
            "and then load it yourself with torch.load(weights_only=False) and save its state_dict."
        ) from e
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        detail = str(e).splitlines()[0][:200] if str(e) else ""
        raise CorruptCheckpointError(
            f"checkpoint {str(path)!r} is unreadable ({type(e).__name__}: {detail}): it is truncated or not a "
            f"checkpoint.{_alternatives(path)}"
        ) from e
    if not isinstance(ck, dict):
        raise CorruptCheckpointError(f"checkpoint {str(path)!r} holds a {type(ck).__name__}, not a checkpoint")
    return ck


def _alternatives(path: Path) -> str:
    """Which other checkpoints sit beside ``path`` (flashvid keeps only last.ckpt and best.ckpt, no history)."""
    others = sorted(p.name for p in path.parent.glob("*.ckpt") if p != path and not p.name.startswith("."))
    if not others:
        return " No other checkpoint is in its folder: start again, or from a copy you kept."
    best = "best.ckpt" if "best.ckpt" in others else others[0]
    return (f" Its folder also has {', '.join(others)}: resume from that one with ckpt_path={path.parent / best} "
            f"(the weights of that checkpoint's step), or test/predict with it.")


def checkpoint_labels(path: str | os.PathLike) -> list[str] | None:
    """The class names a flashvid checkpoint was trained on (None when it does not say)."""
    ck = load_checkpoint(path, mmap=True)
    labels = (ck.get("hyper_parameters") or {}).get("labels") or (ck.get("flashvid") or {}).get("labels")
    return [str(x) for x in labels] if labels else None


def require_training_checkpoint(ck: Mapping[str, Any], path: str | os.PathLike, resume: bool = False) -> None:
    """Refuse, with the fix, a file holding only weights (a ``state_dict``) where a Lightning checkpoint is needed;
    ``resume``: also one without the training state (loops, step) a resume continues from."""
    if "state_dict" in ck and isinstance(ck["state_dict"], Mapping):
        if resume and "pytorch-lightning_version" not in ck:
            raise CorruptCheckpointError(
                f"{str(path)!r} holds weights but no training state (not written by a training run), so ckpt_path= "
                f"cannot resume from it: start a new training from its weights with model.pretrained={path}")
        return
    if ck and all(isinstance(v, torch.Tensor) for v in ck.values()):
        raise CorruptCheckpointError(
            f"{str(path)!r} holds only weights (a state_dict of {len(ck)} tensors), not a flashvid checkpoint with "
            "the model's classes and settings: start a new training from them with flashvid train "
            f"model.pretrained={path} (the backbone's weights are loaded, the head is new); test and predict need "
            "a checkpoint a training wrote (RUN/checkpoints/best.ckpt)")
    raise CorruptCheckpointError(
        f"{str(path)!r} is not a flashvid/Lightning checkpoint (it has no 'state_dict'; keys: "
        f"{', '.join(map(str, list(ck)[:8]))})")


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write checkpoints atomically (temporary file, fsync, rename) and load them with ``weights_only=True``."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | os.PathLike,
                        storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options, got {storage_options!r}")
        if "://" in str(path):  # remote filesystems: Lightning's own writer
            return super().save_checkpoint(to_safe(checkpoint), path)
        atomic_save(to_safe(checkpoint), path)

    def load_checkpoint(self, path: str | os.PathLike, map_location: Any = None,
                        weights_only: bool | None = None) -> dict[str, Any]:
        if weights_only is False:
            raise ValueError("flashvid loads checkpoints with weights_only=True only")
        return load_checkpoint(path, map_location=map_location if map_location is not None else "cpu")


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to ``path`` through a hidden temporary file in the same folder and an atomic rename.

    A failed write (disk full, read-only folder) removes the temporary file and raises
    :class:`CheckpointWriteError` saying why; the previous ``path`` is untouched.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:
        written = tmp.stat().st_size if tmp.is_file() else 0
        tmp.unlink(missing_ok=True)
        raise CheckpointWriteError(_write_failure(path, e, written)) from e
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass
    return path


def _write_failure(path: Path, e: BaseException, written: int) -> str:
    """Why writing ``path`` failed, in words: torch.save reports a full disk as a RuntimeError, so look."""
    kept = (f"the previous {path.name} is unchanged" if path.is_file() else f"no {path.name} was written")
    code = getattr(e, "errno", None)
    try:
        free = shutil.disk_usage(path.parent).free
    except OSError:
        free = None
    if code in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG) or (
            isinstance(e, RuntimeError) and free is not None and free < max(written, 1) + (1 << 20)):
        left = f", {free // (1 << 20)} MiB free" if free is not None else ""
        return (f"disk full while writing checkpoint {path} ({path.parent}{left}): {kept}. Free space there (or "
                f"choose another hydra.run.dir), then continue with resume=true")
    if code in (errno.EROFS, errno.EACCES, errno.EPERM):
        return (f"cannot write checkpoint {path}: {path.parent} is read-only or not writable "
                f"({os.strerror(code)}); {kept}. Choose a writable hydra.run.dir")
    first = str(e).splitlines()[0][:200] if str(e) else ""
    return f"cannot write checkpoint {path} ({type(e).__name__}: {first}); {kept}"


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files (``.last.ckpt.<pid>.tmp``) that killed writes left in ``folder``.

    Call it while holding the run directory's lock (:mod:`flashvid.rundir`): no other process writes there then.
    """
    removed = []
    for p in Path(folder).glob(".*.ckpt.*.tmp"):
        pid = p.name.rsplit(".", 2)[-2]
        if pid.isdigit() and int(pid) == os.getpid():
            continue
        p.unlink(missing_ok=True)
        removed.append(p)
    return removed


def checkpoint_plugins() -> list[Any]:
    """The ``Trainer(plugins=...)`` entries flashvid runs with: atomic, weights-only checkpoints."""
    return [AtomicCheckpointIO()]


def find_resume_checkpoint(folder: str | os.PathLike) -> Path | None:
    """The checkpoint to resume from in a run folder (or its ``checkpoints/``): ``last.ckpt``, else the newest.

    Stale temporary files of a killed write are ignored (they start with ``.``).
    """
    folder = Path(folder)
    for d in (folder / "checkpoints", folder):
        if (d / LAST).is_file():
            return d / LAST
    found = [p for d in (folder / "checkpoints", folder) if d.is_dir() for p in d.glob("*.ckpt")
             if not p.name.startswith(".")]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


BASE_CLASS = "flashvid.classifier.VideoClassifier"  # what class_path(VideoClassifier) gives


def class_path(cls: type) -> str:
    """``module.QualName`` of ``cls``: what a checkpoint records and ``model._target_=`` names."""
    return f"{cls.__module__}.{cls.__qualname__}"


def check_class(recorded: str | None, cls: type, source: str) -> None:
    """Refuse to rebuild a subclass's model (its own head, hooks) as a plain :class:`VideoClassifier`.

    A class is imported only when the user names it, never from what a file says: the fix names the option.
    """
    if recorded is None or class_path(cls) != BASE_CLASS or recorded == BASE_CLASS:
        return
    raise CheckpointError(
        f"{source} holds a {recorded} (a VideoClassifier subclass), which a plain VideoClassifier cannot rebuild: "
        f"name the class, model._target_={recorded} on the command line (its module importable, e.g. on "
        f"PYTHONPATH) or cls={recorded.rpartition('.')[2]} in Python (load_classifier, load_exported)")
