"""Compatibility shims applied once, at ``import flashvid``.

pytorchvideo 0.1.5 (its last release) imports ``torchvision.transforms.functional_tensor``, a module torchvision
renamed to ``_functional_tensor`` in 0.17. An import hook answers the old name with the new module, so
pytorchvideo's models and transforms import on current torchvision. It is a hook rather than an alias made at
once because making the alias imports torchvision (seconds), and ``import flashvid`` must stay instant for the
command line's ``--help``.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from types import ModuleType

OLD, NEW = "torchvision.transforms.functional_tensor", "torchvision.transforms._functional_tensor"


class _RenamedModule(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Resolves ``OLD`` to ``NEW``; placed last on ``sys.meta_path``, so a torchvision that still has ``OLD`` wins."""

    def find_spec(self, fullname: str, path: object = None,
                  target: object = None) -> importlib.machinery.ModuleSpec | None:
        return importlib.util.spec_from_loader(fullname, self) if fullname == OLD else None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return importlib.import_module(NEW)

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run: the module is torchvision's, already executed."""


def alias_torchvision_functional_tensor() -> None:
    if not any(isinstance(f, _RenamedModule) for f in sys.meta_path):
        sys.meta_path.append(_RenamedModule())


alias_torchvision_functional_tensor()
