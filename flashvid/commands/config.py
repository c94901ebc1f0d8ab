"""Checking and building the command line's configs: unknown keys and options fail before anything heavy
runs, each ``_target_`` gets only the arguments it takes, and every error names the valid choices.

Imports only the standard library at module level (Hydra and OmegaConf inside functions), so the dispatcher in
:mod:`flashvid.cli` stays instant.
"""

from __future__ import annotations

import difflib
import inspect
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

if TYPE_CHECKING:
    from omegaconf import DictConfig


class ConfigError(Exception):
    """A mistake in the configuration or the command line: reported in one message, without a traceback."""


def config_dir() -> Path:
    """``conf/`` of the source checkout, else the copy packaged as ``flashvid/conf`` (a non-editable install)."""
    here = Path(__file__).resolve().parents[1]  # flashvid/
    for candidate in (here.parent / "conf", here / "conf"):
        if (candidate / "train.yaml").is_file():
            return candidate
    raise ConfigError(f"flashvid's configs were not found: expected {here.parent / 'conf'} or {here / 'conf'}")


def group_options(conf: Path, group: str) -> list[str]:
    """The options of ``group``: its yamls in ``conf/`` and the ones generated into Hydra's ConfigStore (``model``:
    one per backbone registry entry, :mod:`.model_configs`)."""
    from hydra.core.config_store import ConfigStore

    from .model_configs import register_model_configs

    register_model_configs(conf)
    yamls = {p.stem for p in (conf / group).glob("*.yaml")}
    try:
        stored = {n.removesuffix(".yaml") for n in ConfigStore.instance().list(group)}
    except OSError:  # ConfigStore.list raises IOError for a group it does not hold
        stored = set()
    return sorted(n for n in yamls | stored if not n.startswith("_"))


def precheck(cmd: str, conf: Path, args: Sequence[str]) -> None:
    """Fail fast, before Hydra and the heavy imports, on an unknown group option or key, listing the valid ones."""
    from hydra._internal.utils import get_args_parser
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        ns = get_args_parser().parse_args(list(args))
    except SystemExit as e:  # argparse already printed the problem
        raise ConfigError("invalid command line (see above)") from e
    if ns.help or ns.hydra_help or ns.info or ns.shell_completion or ns.config_dir or ns.config_path \
            or ns.config_name or ns.experimental_rerun:
        return  # Hydra's own modes, or configs from elsewhere: let Hydra handle them
    try:
        overrides = OverridesParser.create().parse_overrides(ns.overrides)
    except HydraException as e:
        raise ConfigError(str(e)) from None
    groups = {p.name for p in conf.iterdir() if p.is_dir()}
    options = {group: group_options(conf, group) for group in groups}
    compose_with: list[str] = []
    keys: list[tuple[str, Any]] = []  # (key, the value when it is one mapping, else None)
    for o in overrides:
        key = o.key_or_group
        if o.is_hydra_override() or key == "hydra" or o.package is not None:
            continue
        if key in groups:
            if o.is_delete():
                continue
            values = list(o.sweep_string_iterator()) if o.is_choice_sweep() else [o.get_value_element_as_str()]
            for v in values:
                for option in (v.strip("[]").split(",") if v.startswith("[") else [v]):
                    option = option.strip()
                    if option and option != "null" and option not in options[key]:
                        close = difflib.get_close_matches(option, options[key], n=1)
                        hint = f" Did you mean {key}={close[0]}?" if close else ""
                        raise ConfigError(f"unknown option {key}={option}.{hint} "
                                          f"Available in '{key}': {', '.join(options[key])}")
            first = values[0]
            compose_with.append(f"{'+' if o.is_add() else ''}{key}={first}")
        elif o.is_add() or o.is_force_add():
            if not o.is_sweep_override():
                compose_with.append(o.input_line)
        else:
            value = None if o.is_sweep_override() else o.value()
            keys.append((key, value if isinstance(value, Mapping) else None))
    if not keys:
        return
    cfg = _compose(conf, cmd, compose_with)
    for key, mapping in keys:
        _check_key(cfg, key)
        if mapping is not None:
            _check_mapping(cfg, key, mapping)


def check_run_dir(cmd: str, conf: Path, args: Sequence[str]) -> None:
    """The run directory (``hydra.run.dir``, or ``hydra.sweep.dir`` with ``-m``) can be written, checked before
    Hydra creates it and opens its log file there (its own failure is a traceback)."""
    from hydra._internal.utils import get_args_parser
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException
    from omegaconf import OmegaConf

    from ..rundir import RunDirectoryError, check_writable

    ns = get_args_parser().parse_args(list(args))
    if ns.cfg or ns.help or ns.hydra_help or ns.info or ns.shell_completion or ns.config_dir or ns.config_path \
            or ns.config_name or ns.experimental_rerun:
        return  # nothing is written, or configs from elsewhere
    key = "hydra.sweep.dir" if ns.multirun else "hydra.run.dir"
    try:
        given = [o for o in OverridesParser.create().parse_overrides(ns.overrides) if o.key_or_group == key]
    except HydraException as e:
        raise ConfigError(str(e)) from None
    if given:
        value: Any = given[-1].get_value_element_as_str()
    else:  # the command's default, unresolved
        value = OmegaConf.to_container(OmegaConf.load(conf / f"{cmd}.yaml"), resolve=False)
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
    if not isinstance(value, str):
        return
    static = str(value).split("${", 1)[0]  # a folder named by the time (or SLURM) below a fixed one
    try:
        check_writable(static or ".")
    except RunDirectoryError as e:
        raise ConfigError(str(e)) from None


def command_help(cmd: str, conf: Path, args: Sequence[str]) -> str:
    """``flashvid <cmd> --help``: the command's groups and its composed config (with the overrides given).

    Written here rather than left to Hydra's ``--help``, which composes the config once per option of every group
    (85 compositions for train: seconds); this composes it once. ``--hydra-help`` is still Hydra's.
    """
    from omegaconf import OmegaConf

    primary = OmegaConf.load(conf / f"{cmd}.yaml")
    text = OmegaConf.select(primary, "hydra.help", default=None) or {}
    groups = []
    for entry in primary.get("defaults") or []:
        group = next(iter(entry)) if isinstance(entry, Mapping) else None
        if group and (conf / str(group)).is_dir():
            groups.append(f"{group}: {', '.join(group_options(conf, str(group)))}")
    overrides = [a for a in args if not a.startswith("-")]
    try:
        cfg = _compose(conf, cmd, overrides)
    except ConfigError:  # e.g. a sweep (a=1,2): show the defaults
        cfg = _compose(conf, cmd, [])
    parts = [str(text.get("header") or f"flashvid {cmd}\n").rstrip("\n"), ""]
    if groups:
        parts += ["== Configuration groups ==", "Choose one option per group (group=option)", "", *groups, ""]
    parts += ["== Config ==", "Override anything in the config (foo.bar=value)", "",
              OmegaConf.to_yaml(cfg).rstrip("\n"), "", str(text.get("footer") or "").rstrip("\n")]
    return "\n".join(parts)


def _compose(conf: Path, cmd: str, overrides: list[str]) -> "DictConfig":
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException

    from .model_configs import register_model_configs

    register_model_configs(conf)
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(conf), version_base="1.3", job_name=cmd):
            return compose(config_name=cmd, overrides=overrides)
    except HydraException as e:
        raise ConfigError(str(e)) from None
    finally:
        GlobalHydra.instance().clear()


def _check_key(cfg: Any, key: str) -> None:
    from omegaconf import DictConfig, ListConfig

    node, path = cfg, list[str]()
    for part in key.split("."):
        if isinstance(node, DictConfig) and part in node.keys():  # `in node` is False for ??? values
            node = node._get_node(part)  # no interpolation is resolved here
        elif isinstance(node, ListConfig) and part.isdigit() and int(part) < len(node):
            node = node._get_node(int(part))
        else:
            where = ".".join(path)
            valid = sorted(str(k) for k in node.keys() if not str(k).startswith("_")) \
                if isinstance(node, DictConfig) else []
            close = difflib.get_close_matches(part, valid, n=1)
            hint = f" Did you mean {'.'.join([*path, close[0]])}?" if close else ""
            listing = f" Valid keys under '{where or '<top level>'}': {', '.join(valid)}." if valid else (
                f" '{where}' has no sub-keys." if where else "")
            raise ConfigError(f"unknown key '{key}'.{hint}{listing} (To add a new key on purpose: +{key}=VALUE)")
        path.append(part)


def _check_mapping(cfg: Any, key: str, mapping: Mapping[str, Any]) -> None:
    """``key={a:1}`` onto a mapping without key ``a``: Hydra merges into it, fails "not in struct" and suggests
    ``+key=...``, which fails too (the key exists); name the forms that work instead."""
    from omegaconf import DictConfig, OmegaConf

    node = OmegaConf.select(cfg, key, throw_on_missing=False)
    if not isinstance(node, DictConfig):
        return  # a null or plain value is replaced by the mapping: Hydra does that
    new = sorted(str(k) for k in mapping if k not in node)
    if new:
        value = "{" + ",".join(f"{k}:{v}" for k, v in mapping.items()) + "}"
        raise ConfigError(f"{key}={value}: '{key}' has no key {', '.join(repr(k) for k in new)} to set. Write "
                          f"++{key}={value} to add keys to it, or +{key}.{new[0]}=VALUE for one")


# ---------------------------------------------------------------------------------------------------- resolvers
def register_resolvers() -> None:
    """``${flashvid.precision:ACCELERATOR}``, ``${flashvid.num_nodes:}``, ``${flashvid.devices_per_node:}`` and
    ``${flashvid.run_name:DEFAULT}``, used by the trainer configs and the run directory."""
    from omegaconf import OmegaConf

    for name, fn in {"flashvid.precision": default_precision, "flashvid.num_nodes": num_nodes,
                     "flashvid.devices_per_node": devices_per_node, "flashvid.run_name": run_name}.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)


def default_precision(accelerator: str = "auto") -> str:
    """bf16-mixed on GPUs that support it, 16-mixed on older GPUs, 32-bit on the CPU."""
    if str(accelerator) not in ("auto", "gpu", "cuda"):
        return "32-true"
    import torch

    if not torch.cuda.is_available():
        return "32-true"
    return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"


def num_nodes() -> int:
    """Machines in the job: SLURM's node count, else torchrun's WORLD_SIZE / LOCAL_WORLD_SIZE, else 1."""
    env = os.environ
    if env.get("SLURM_NNODES"):
        return int(env["SLURM_NNODES"])
    if env.get("WORLD_SIZE") and env.get("LOCAL_WORLD_SIZE"):
        return max(int(env["WORLD_SIZE"]) // int(env["LOCAL_WORLD_SIZE"]), 1)
    return 1


def devices_per_node() -> int | str:
    """Processes (GPUs) per machine: SLURM's tasks per node, else torchrun's LOCAL_WORLD_SIZE, else 'auto'."""
    env = os.environ
    if env.get("SLURM_NTASKS_PER_NODE"):
        return int(env["SLURM_NTASKS_PER_NODE"].split("(")[0].split(",")[0])
    if env.get("LOCAL_WORLD_SIZE"):
        return int(env["LOCAL_WORLD_SIZE"])
    return "auto"


def run_name(default: str) -> str:
    """The run directory's name: shared by every rank of a multi-task SLURM step, else ``default`` (the time)."""
    env = os.environ
    if env.get("SLURM_JOB_ID") and int(env.get("SLURM_NTASKS", "1") or 1) > 1:
        return f"slurm-{env['SLURM_JOB_ID']}.{env.get('SLURM_STEP_ID', '0')}"
    return default


# ---------------------------------------------------------------------------------------------------- building
def accepted_arguments(target: str) -> set[str] | None:
    """Keyword arguments ``target`` takes (following ``**kwargs`` into the datamodule), or None when open-ended."""
    from hydra.utils import get_object

    try:
        obj = get_object(target)
    except Exception as e:  # noqa: BLE001  (ImportError, AttributeError...: a bad _target_)
        raise ConfigError(f"cannot import _target_ '{target}': {e}") from None
    try:
        params = inspect.signature(obj).parameters
    except (TypeError, ValueError):
        return None
    names = {n for n, p in params.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return names
    from ..data import VideoClassificationData

    forwards = getattr(obj, "forwards_kwargs_to", None)  # a data function passing **kwargs on (data=demo)
    if isinstance(forwards, str):
        return names | (accepted_arguments(forwards) or set())
    owner = getattr(obj, "__self__", None)
    if inspect.isclass(owner) and issubclass(owner, VideoClassificationData):
        return names | {n for n in inspect.signature(owner.__init__).parameters if n != "self"}
    return None


def check_arguments(node: Any, key: str) -> None:
    """Every ``_target_`` under ``node`` gets only arguments it accepts; the error lists the valid ones."""
    if isinstance(node, Mapping):
        target = node.get("_target_")
        if isinstance(target, str):
            accepted = accepted_arguments(target)
            if accepted is not None and "source" in accepted and isinstance(node.get("source"), str):
                accepted = accepted | source_arguments(node["source"], f"{key}.source")  # from_source: its reader's
            given = {str(k) for k in node if not str(k).startswith("_")}
            unknown = sorted(given - accepted) if accepted is not None else []
            if unknown:
                hints = [f"{u} -> {m[0]}" for u in unknown
                         if (m := difflib.get_close_matches(u, sorted(accepted), n=1))]
                hint = f" Did you mean: {', '.join(hints)}?" if hints else ""
                raise ConfigError(
                    f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(f'{key}.{u}' for u in unknown)} "
                    f"for {target}.{hint} Valid keys: {', '.join(sorted(accepted))}")
        for k, v in node.items():
            if not str(k).startswith("_"):
                check_arguments(v, f"{key}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            check_arguments(v, f"{key}.{i}")


def source_arguments(name: str, key: str) -> set[str]:
    """The arguments the data source ``name`` takes (its reader's); an unknown name lists the registered ones."""
    from ..source_registry import get_source

    try:
        return get_source(name).arguments
    except ValueError as e:
        raise ConfigError(f"{key}: {e}") from None


# Lightning loggers whose package is optional: one of the named packages must be installed
LOGGER_PACKAGES = {"WandbLogger": ("wandb",), "MLFlowLogger": ("mlflow",), "CometLogger": ("comet_ml",),
                   "NeptuneLogger": ("neptune",), "TensorBoardLogger": ("tensorboard", "tensorboardX")}


def check_logger_packages(loggers: Mapping[str, Any]) -> None:
    """A logger whose package is missing fails now, not after the data and the model are built (and before the
    argument check imports Lightning)."""
    import importlib.util

    for name, node in loggers.items():
        if not isinstance(node, Mapping):
            continue
        needs = LOGGER_PACKAGES.get(str(node.get("_target_", "")).rsplit(".", 1)[-1])
        if needs and not any(importlib.util.find_spec(p) for p in needs):
            raise ConfigError(f"logger {name} needs the {needs[0]} package, which is not installed: pip install "
                              f"{needs[0]}, or choose other loggers (logger=default, logger=csv, logger=none)")


def check_data_paths(data: Mapping[str, Any]) -> None:
    """A data source path that does not exist fails now, in one line, before the argument check imports torch and
    Lightning (seconds). Which keys are paths is the source's (:mod:`flashvid.source_registry`); a source that
    writes its data on first use (the demo) has none to check."""
    from ..source_registry import path_arguments

    try:
        keys = path_arguments(data)
    except ValueError as e:  # an unknown data.source
        raise ConfigError(f"data.source: {e}") from None
    for key in keys:
        value = data.get(key)
        if isinstance(value, (str, os.PathLike)) and value and not os.path.exists(value):
            raise ConfigError(f"data.{key}={value} does not exist: check the path")


def validate(cfg: "DictConfig", sections: Sequence[str]) -> None:
    """Check the arguments of every ``_target_`` in ``sections`` before building anything."""
    from omegaconf import OmegaConf

    if "logger" in sections and cfg.get("logger"):
        check_logger_packages(cfg.logger)
    if "data" in sections and cfg.get("data"):
        check_data_paths(cfg.data)
    for section in sections:
        if section in cfg and cfg[section] is not None:
            check_arguments(OmegaConf.to_container(cfg[section], resolve=False), section)


def build(node: Any, key: str, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` with the cause of a failure reported against the config key."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    from ..checkpoint import CheckpointError
    from ..models import PretrainedWeightsUnavailable

    try:
        return instantiate(node, _convert_="all", **kwargs)
    except InstantiationException as e:
        cause = e.__cause__
        if isinstance(cause, (PretrainedWeightsUnavailable, FileNotFoundError, NotADirectoryError)):
            raise cause from None
        if isinstance(cause, (ValueError, TypeError, KeyError, ImportError, AttributeError, CheckpointError)):
            raise ConfigError(f"{key}: {cause}") from None
        raise


def check_backbone(name: Any) -> None:
    """An unknown ``model.backbone`` fails here, from the catalog, before torch is imported."""
    from ..models.catalog import check_backbone_name

    try:
        check_backbone_name(str(name))
    except ValueError as e:
        raise ConfigError(f"model.backbone: {e} (`flashvid backbones` lists them with their input needs)") from None




def clip_overrides(data_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The clip settings set explicitly in the data config: the model records them so checkpoints carry them
    (:func:`flashvid.data.clip_config.clip_overrides`, imported when called: this module loads no torch)."""
    from ..data.clip_config import clip_overrides as set_in

    return set_in(data_cfg)
