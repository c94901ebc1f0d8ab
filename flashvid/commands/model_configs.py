"""The ``model`` config group: one option per backbone registry entry, made from the catalog (the registry as data)
and put in Hydra's ConfigStore, so ``model=<entry>`` works for every entry, and for one added later, without a yaml.

Each option is ``conf/model/generic.yaml`` (the classifier's settings) with the entry's ``backbone``,
``pretrained: true`` where the entry has published weights, and its family's defaults on top. A yaml of the same
name in ``conf/model/`` is used instead of the generated option (which is then not stored: Hydra refuses a name in
both places): write one only for settings the entry's data does not give.

Reads ``flashvid/models/catalog.json`` (no torch): ``--help``, ``flashvid backbones`` and config mistakes stay fast.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

GROUP = "model"
BASE = "generic"  # conf/model/generic.yaml: every option's defaults
# Settings a whole family needs: transformers ViTs fine-tune from Kinetics weights at VideoMAE's rate
FAMILY_DEFAULTS: dict[str, dict[str, Any]] = {"transformers": {"learning_rate": 5.0e-5}}
# Short names: model=tiny is the demo's and the tests' (the entry is tiny_r2plus1d)
SHORT_NAMES: dict[str, str] = {"tiny": "tiny_r2plus1d"}


def model_config(entry: dict[str, Any]) -> dict[str, Any]:
    """The ``model`` option of one catalog entry: generic's keys, the entry's backbone and weights, family defaults."""
    return {"defaults": [BASE, "_self_"], "backbone": entry["name"], "pretrained": entry.get("weights") is not None,
            **FAMILY_DEFAULTS.get(entry["family"], {})}


def model_configs(conf: Path | None = None) -> dict[str, dict[str, Any]]:
    """Option name -> config node, for every catalog entry and every short name that has no yaml in ``conf/model``."""
    from ..models.catalog import catalog

    by_name = {e["name"]: model_config(e) for e in catalog()}
    by_name.update({short: by_name[name] for short, name in SHORT_NAMES.items() if name in by_name})
    yamls = {p.stem for p in (conf / GROUP).glob("*.yaml")} if conf is not None else set()
    return {name: node for name, node in by_name.items() if name not in yamls}


def select_with(backbone: str) -> str:
    """The ``model=`` option that selects ``backbone`` (its short name when it has one)."""
    short = [s for s, name in SHORT_NAMES.items() if name == backbone]
    return f"{GROUP}={short[0] if short else backbone}"


@lru_cache(maxsize=None)
def register_model_configs(conf: Path) -> None:
    """Put the generated options for the config tree ``conf`` into Hydra's ConfigStore (once per process, before
    any composition)."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    for name, node in model_configs(conf).items():
        store.store(group=GROUP, name=name, node=node, provider="flashvid")
