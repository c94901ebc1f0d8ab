"""Checkpoints that survive a ``kill -9`` and load without running code.

- :class:`AtomicCheckpointIO` (a Lightning ``CheckpointIO`` plugin) writes each checkpoint to a hidden temporary
  file in the target folder, fsyncs it and renames it over the target: a kill at any moment leaves either the old
  ``last.ckpt`` or the new one, never a truncated file. It also turns config objects (OmegaConf containers, paths)
  into plain types on the way out, so every flashvid checkpoint loads with ``torch.load(weights_only=True)``, and it
  always loads that way.
- :func:`load_checkpoint` is that safe load with a clear refusal for pickles that carry code.
- :func:`find_resume_checkpoint` finds the checkpoint to resume a run folder from.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from enum import Enum
from pathlib import Path, PurePath
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

LAST = "last.ckpt"


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint holds pickled Python objects beyond tensors and plain containers: loading it could run code."""


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


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """``torch.load(path, weights_only=True)``, refusing with a clear message a pickle that would run code."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UnsafeCheckpointError(
            f"refusing to load {str(path)!r}: it holds pickled Python objects that could run code when loaded "
            f"({first}). flashvid checkpoints never need that; only a checkpoint from a source you trust should, "
            "and then load it yourself with torch.load(weights_only=False) and save its state_dict."
        ) from e
    except (RuntimeError, EOFError, OSError) as e:
        raise RuntimeError(
            f"checkpoint {str(path)!r} is unreadable ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            "): it may be truncated. Resume from another one (the checkpoints folder keeps the previous ones)."
        ) from e


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
    """``torch.save`` to ``path`` through a hidden temporary file in the same folder and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
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
