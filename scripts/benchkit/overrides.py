"""Hydra-style ``key=value`` overrides passed through to flashvid, so a new data or prepare option is measurable
without changing the tool (``--data-override data.clips_per_video=2``, ``--prepare format=frames``).

Values are YAML (``true``, ``2``, ``0.5``, ``null``, ``[a, b]``), as Hydra reads them; a dotted key makes nested
mappings (``data.augmentation.hflip=0`` -> ``{"augmentation": {"hflip": 0}}``). Hydra itself is not needed, so the
GPU machine without it runs the tool too.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from .record import BenchError


def parse(spec: str, prefix: str, what: str) -> dict[str, Any]:
    """``"data.a=1 data.b.c=x"`` -> ``{"a": 1, "b": {"c": "x"}}`` (``prefix`` ``data.`` optional, ``+`` ignored)."""
    import yaml

    out: dict[str, Any] = {}
    for item in shlex.split(spec):
        key, eq, value = item.lstrip("+").partition("=")
        if not eq or not key:
            raise BenchError(f"{what} {item!r}: expected KEY=VALUE, e.g. {prefix}num_workers=8")
        if key.startswith(prefix):
            key = key[len(prefix):]
        node = out
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        try:
            node[leaf] = yaml.safe_load(value) if value else ""
        except yaml.YAMLError as e:
            raise BenchError(f"{what} {item!r}: value is not YAML ({e.__class__.__name__}); quote it") from None
    return out


def slug(spec: str) -> str:
    """A short file- and label-safe name for an override set (``format=frames`` -> ``format-frames``)."""
    return re.sub(r"[^A-Za-z0-9._]+", "-", spec.replace("data.", "").replace("prepare.", "")).strip("-") or "none"


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``extra`` over ``base``, nested mappings merged key by key."""
    out = dict(base)
    for k, v in extra.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out
