"""The ``flashvid`` command: ``flashvid {train,test,predict,backbones,doctor} [group=option] [key=value] [-m]``.

Each subcommand is a Hydra app over ``conf/<command>.yaml`` and the groups beside it (data, model, trainer,
finetune, callbacks, logger, experiment), so overrides, ``--cfg job`` and ``-m`` sweeps work as in any Hydra
app. Objects are built from the configs' ``_target_`` with ``hydra.utils.instantiate``. Before anything heavy
runs, the overrides and every ``_target_``'s arguments are checked, so a typo fails at once with the valid
choices, a short message and exit status 2 (``FLASHVID_DEBUG=1`` shows the traceback instead).
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import json
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from .data import VideoClassificationData

log = logging.getLogger("flashvid.cli")

COMMANDS: dict[str, str] = {
    "train": "fine-tune a backbone on labelled videos (writes a run directory with checkpoints and metrics)",
    "test": "video-level top-1 / top-5 / mean-class accuracy of a checkpoint on a test split",
    "predict": "classify video files and folders with a checkpoint: a table and a JSON file",
    "backbones": "list the registered backbones and the input each one needs",
    "doctor": "check a dataset and this machine before training",
    "prepare": "a training-friendly copy of a dataset once (resized, short GOP): fast training on large footage",
    "export": "write a checkpoint as a transformers directory, ONNX, torch.export program or safetensors",
    "embed": "per-video features (the backbone's pooled output) to .npy plus an index CSV",
    "pretrain": "self-supervised VideoMAE pretraining on unlabelled videos (writes an encoder for model.pretrained=)",
}
USAGE_ERROR = 2
DEMO_MARKER = ".flashvid-demo-complete"


class ConfigError(Exception):
    """A mistake in the configuration or the command line: reported in one message, without a traceback."""


# ---------------------------------------------------------------------------------------------------- entry point
def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch on the first argument; the rest goes to that subcommand's Hydra app."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(_usage(), file=sys.stdout if args else sys.stderr)
        return 0 if args else USAGE_ERROR
    if args[0] in ("-V", "--version"):
        from . import __version__

        print(f"flashvid {__version__}")
        return 0
    cmd, rest = args[0], args[1:]
    if cmd not in COMMANDS:
        close = difflib.get_close_matches(cmd, list(COMMANDS), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        return _fail("flashvid", f"unknown command '{cmd}'.{hint} Choose one of: {', '.join(COMMANDS)}")
    register_resolvers()
    try:
        conf = config_dir()
        precheck(cmd, conf, rest)
    except ConfigError as e:
        return _fail(f"flashvid {cmd}", str(e))

    import hydra

    _state.clear()
    saved = sys.argv
    prog = saved[0] if saved else "flashvid"
    # Hydra reads its overrides from sys.argv; the task puts the full command line back before training, because
    # Lightning's DDP launcher starts the other ranks with sys.argv (and then needs the subcommand in it).
    sys.argv = [prog, *rest]
    try:
        hydra.main(version_base="1.3", config_path=str(conf), config_name=cmd)(_task(cmd, [prog, cmd, *rest]))()
    except SystemExit as e:  # Hydra's own errors exit 1, ours 2: returned, so main() can be called in-process
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        sys.argv = saved
    result = _state.get("result")
    return result if isinstance(result, int) and not isinstance(result, bool) else 0


_state: dict[str, Any] = {}


def _usage() -> str:
    lines = ["usage: flashvid <command> [group=option ...] [key=value ...] [-m] [--cfg job] [--help]", "",
             "commands:"]
    lines += [f"  {name:<10} {text}" for name, text in COMMANDS.items()]
    lines += ["", "examples:",
              "  flashvid train experiment=demo",
              "  flashvid train data.train_folder=videos/train model=x3d_xs trainer.max_epochs=20",
              "  flashvid test ckpt_path=runs/train/.../checkpoints/best.ckpt data.test_folder=videos/test",
              "  flashvid predict ckpt_path=best.ckpt inputs=[clip.mp4,more_videos/]",
              "", "`flashvid <command> --help` lists that command's config groups and keys."]
    return "\n".join(lines)


def _fail(prog: str, message: str) -> int:
    print(f"{prog}: error: {message}", file=sys.stderr)
    return USAGE_ERROR


def _task(cmd: str, argv: list[str]) -> Callable[["DictConfig"], None]:
    def task(cfg: "DictConfig") -> None:
        sys.argv = argv
        try:
            _state["result"] = HANDLERS[cmd](cfg)
        except Exception as e:  # noqa: BLE001  (user errors become one line; anything else keeps its traceback)
            message = user_error_message(e)
            if message is None or os.environ.get("FLASHVID_DEBUG") or os.environ.get("HYDRA_FULL_ERROR"):
                raise
            print(f"flashvid {cmd}: error: {message}", file=sys.stderr)
            raise SystemExit(USAGE_ERROR) from None

    task.__name__ = cmd
    return task


def user_error_message(e: BaseException) -> str | None:
    """The message of an error caused by the configuration or the data, else None (a bug: keep the traceback)."""
    from hydra.errors import HydraException, InstantiationException
    from omegaconf.errors import OmegaConfBaseException

    from .classifier import TooManyFailedFiles
    from .models import PretrainedWeightsUnavailable

    if isinstance(e, InstantiationException):  # a failure inside a constructor that build() did not explain
        return None
    if isinstance(e, (ConfigError, FileNotFoundError, NotADirectoryError, ModuleNotFoundError,
                      PretrainedWeightsUnavailable, TooManyFailedFiles, OmegaConfBaseException, HydraException)):
        return str(e).strip()
    return None


# ---------------------------------------------------------------------------------------------------- config files
def config_dir() -> Path:
    """``conf/`` of the source checkout, else the copy packaged as ``flashvid/conf`` (a non-editable install)."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "conf", here / "conf"):
        if (candidate / "train.yaml").is_file():
            return candidate
    raise ConfigError(f"flashvid's configs were not found: expected {here.parent / 'conf'} or {here / 'conf'}")


def group_options(conf: Path, group: str) -> list[str]:
    return sorted(p.stem for p in (conf / group).glob("*.yaml") if not p.stem.startswith("_"))


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
    compose_with: list[str] = []
    keys: list[str] = []
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
                    if option and option != "null" and not (conf / key / f"{option}.yaml").is_file():
                        close = difflib.get_close_matches(option, group_options(conf, key), n=1)
                        hint = f" Did you mean {key}={close[0]}?" if close else ""
                        raise ConfigError(f"unknown option {key}={option}.{hint} "
                                          f"Available in '{key}': {', '.join(group_options(conf, key))}")
            first = values[0]
            compose_with.append(f"{'+' if o.is_add() else ''}{key}={first}")
        elif o.is_add() or o.is_force_add():
            if not o.is_sweep_override():
                compose_with.append(o.input_line)
        else:
            keys.append(key)
    if not keys:
        return
    cfg = _compose(conf, cmd, compose_with)
    for key in keys:
        _check_key(cfg, key)


def _compose(conf: Path, cmd: str, overrides: list[str]) -> "DictConfig":
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException

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

    node, path = cfg, []
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
    from .data import VideoClassificationData

    if obj is demo_data:
        return names | accepted_arguments("flashvid.data.VideoClassificationData.from_folders")
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


def validate(cfg: "DictConfig", sections: Sequence[str]) -> None:
    """Check the arguments of every ``_target_`` in ``sections`` before building anything."""
    from omegaconf import OmegaConf

    for section in sections:
        if section in cfg and cfg[section] is not None:
            check_arguments(OmegaConf.to_container(cfg[section], resolve=False), section)


def build(node: Any, key: str, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` with the cause of a failure reported against the config key."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    from .models import PretrainedWeightsUnavailable

    try:
        return instantiate(node, _convert_="all", **kwargs)
    except InstantiationException as e:
        cause = e.__cause__
        if isinstance(cause, (PretrainedWeightsUnavailable, FileNotFoundError, NotADirectoryError)):
            raise cause from None
        if isinstance(cause, (ValueError, TypeError, KeyError, ImportError, AttributeError)):
            raise ConfigError(f"{key}: {cause}") from None
        raise


def check_backbone(name: Any) -> None:
    from .models import get_backbone_spec

    try:
        get_backbone_spec(str(name))
    except ValueError as e:
        raise ConfigError(f"model.backbone: {e} (`flashvid backbones` lists them with their input needs)") from None


def clip_overrides(data_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The clip settings set explicitly in the data config: the model records them so checkpoints carry them."""
    from .data import DataConfig

    return {f.name: data_cfg[f.name] for f in dataclasses.fields(DataConfig)
            if data_cfg.get(f.name) is not None}


def align_labels(dm: "VideoClassificationData", labels: Sequence[str]) -> None:
    """Index the data's classes like the checkpoint's (a test folder may hold fewer classes, in another order)."""
    labels = list(labels)
    if dm.labels == labels:
        return
    unknown = sorted(set(dm.labels) - set(labels))
    if unknown:
        raise ConfigError(f"the data has classes the checkpoint was not trained on: {unknown}. "
                          f"The checkpoint's classes: {labels}")
    remap = {i: labels.index(name) for i, name in enumerate(dm.labels)}
    for split, samples in dm.samples.items():
        dm.samples[split] = [dataclasses.replace(s, label=tuple(remap[i] for i in s.label)) if isinstance(
            s.label, tuple) else dataclasses.replace(s, label=remap[s.label]) if s.label >= 0 else s for s in samples]
    dm.labels = labels


def output_dir() -> Path:
    from hydra.core.hydra_config import HydraConfig

    return Path(HydraConfig.get().runtime.output_dir)


def is_rank_zero() -> bool:
    from lightning.pytorch.utilities import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")


def _floats(metrics: Mapping[str, Any]) -> dict[str, float]:
    return {str(k): float(v) for k, v in metrics.items()}


# ---------------------------------------------------------------------------------------------------- demo data
def ensure_demo_data(root: str | os.PathLike = "demo_data", **generate: Any) -> Path:
    """Write flashvid's demo videos into ``root`` unless a complete set is there (a marker file says so)."""
    root = Path(root)
    if (root / DEMO_MARKER).is_file():
        return root
    from .data import make_demo_dataset

    log.info("flashvid: writing the demo videos into %s", root)
    make_demo_dataset(root, **generate)
    (root / DEMO_MARKER).write_text(json.dumps(generate, default=str) + "\n")
    return root


def demo_data(root: str = "demo_data", generate: Mapping[str, Any] | None = None,
              **kwargs: Any) -> "VideoClassificationData":
    """``data=demo``: the demo videos (generated on first use) through ``VideoClassificationData.from_folders``."""
    from .data import VideoClassificationData

    ensure_demo_data(root, **dict(generate or {}))
    return VideoClassificationData.from_folders(**kwargs)


# ---------------------------------------------------------------------------------------------------- commands
def _callbacks(cfg: "DictConfig", has_val: bool, has_logger: bool, only: str | None = None,
               num_val_videos: int | None = None) -> list[Any]:
    from .validation_policy import MIN_VAL_VIDEOS, callback_overrides

    out = []
    for name, node in (cfg.get("callbacks") or {}).items():
        if node is None:
            continue
        target = str(node.get("_target_", ""))
        if only is not None and only not in target:
            continue
        kwargs: dict[str, Any] = {}
        if not has_val and str(node.get("monitor", "") or "").startswith("val/"):
            if "EarlyStopping" in target:
                log.warning("flashvid: no validation data, so no early stopping (set data.val_folder or val_split)")
                continue
            kwargs["monitor"] = None  # keep the latest checkpoint instead of the best
        elif has_val and num_val_videos is not None:
            over = callback_overrides(target, node, num_val_videos, cfg.trainer.get("max_epochs"),
                                      cfg.get("min_val_videos", MIN_VAL_VIDEOS))
            if over is None:
                continue
            kwargs.update(over)
        if "LearningRateMonitor" in target and not has_logger:
            continue
        out.append(build(node, f"callbacks.{name}", **kwargs))
    return out


def run_train(cfg: "DictConfig") -> dict[str, Any]:
    """Fit, then test the best checkpoint when there is test data; writes config.yaml and metrics.json."""
    from omegaconf import OmegaConf

    check_backbone(cfg.model.backbone)
    validate(cfg, ["data", "model", "trainer", "finetune", "callbacks", "logger"])
    out = output_dir()
    from contextlib import nullcontext

    from .callbacks import ClassMismatchError
    from .checkpoint import CheckpointError, remove_stale_temporaries
    from .rundir import RunDirectoryError, locked_run_dir

    try:  # one training process per run directory (rank 0 holds the lock for all ranks)
        with locked_run_dir(out) if is_rank_zero() else nullcontext(out):
            if is_rank_zero():
                remove_stale_temporaries(out / "checkpoints")
                OmegaConf.save(cfg, out / "config.yaml", resolve=True)
            return _train(cfg, out)
    except (CheckpointError, RunDirectoryError, ClassMismatchError) as e:
        raise ConfigError(str(e)) from None


def _train(cfg: "DictConfig", out: Path) -> dict[str, Any]:
    import lightning as L

    L.seed_everything(cfg.seed, workers=True)
    dm = build(cfg.data, "data")
    if "train" not in dm.samples:
        raise ConfigError("no training videos: set the data source, e.g. data.train_folder=PATH (data=folders), "
                          "data.train_file=LIST (data=csv), or use data=demo")
    model = build(cfg.model, "model", labels=dm.labels, data=clip_overrides(cfg.data))
    loggers = [build(node, f"logger.{name}") for name, node in (cfg.get("logger") or {}).items()
               if node is not None]
    has_val = "val" in dm.samples
    from .callbacks import robust_callbacks
    from .checkpoint import checkpoint_plugins

    # the best-by-val/acc checkpoint from the config, then flashvid's own: RUN/checkpoints/last.ckpt every
    # checkpoint_every_n_steps (atomically), failures.json, Ctrl-C/SIGTERM checkpoints and exact resumes
    callbacks = _callbacks(cfg, has_val, bool(loggers), num_val_videos=len(dm.samples.get("val", []))) + robust_callbacks(
        out, checkpoint_every_n_steps=cfg.get("checkpoint_every_n_steps"))
    deepspeed = "deepspeed" in str(cfg.trainer.get("strategy", "")).lower()
    trainer = build(cfg.trainer, "trainer", callbacks=callbacks, logger=loggers or False,
                    **({} if deepspeed else {"plugins": checkpoint_plugins()}))
    strategy = build(cfg.finetune, "finetune")
    ckpt_path = resume_checkpoint(cfg, out)
    if ckpt_path:  # before Lightning loads it: a readable checkpoint of the data's classes, else the fix in one line
        from .callbacks import check_labels
        from .checkpoint import checkpoint_labels

        check_labels(checkpoint_labels(ckpt_path), dm.labels, f"the checkpoint {ckpt_path}", checkpoint=ckpt_path)
    log.info("flashvid train: %s on %d classes, %d train / %d val videos -> %s%s", cfg.model.backbone,
             len(dm.labels), len(dm.samples["train"]), len(dm.samples.get("val", [])), out,
             f" (resuming from {ckpt_path})" if ckpt_path else "")
    trainer.finetune(model, datamodule=dm, strategy=strategy, ckpt_path=ckpt_path)
    if has_val and not any(str(k).startswith("val/") for k in trainer.callback_metrics):
        # no validation of the final weights happened (a resume of a run killed after its last checkpoint, with
        # nothing left to train; max_steps ending mid-epoch): validate them, so "final" always describes them
        trainer.validate(model, datamodule=dm, verbose=False)

    ckpt = trainer.checkpoint_callback
    best = getattr(ckpt, "best_model_path", "") or ""
    score = getattr(ckpt, "best_model_score", None)
    result: dict[str, Any] = {
        "run_dir": str(out), "backbone": str(cfg.model.backbone), "labels": list(dm.labels),
        "epochs": trainer.current_epoch, "global_step": trainer.global_step,
        "best_checkpoint": best or None,
        "last_checkpoint": str(out / "checkpoints" / "last.ckpt") if (out / "checkpoints" / "last.ckpt").is_file()
        else None,
        "best_val_acc": float(score) if score is not None and getattr(ckpt, "monitor", None) == "val/acc" else None,
        "best_by": getattr(ckpt, "monitor", None), "best_score": float(score) if score is not None else None,
        "final": _floats(trainer.callback_metrics), "test": None,
    }
    if cfg.get("test_after_training", True) and "test" in dm.samples:
        tested = trainer.test(model, datamodule=dm, ckpt_path="best" if best else None, verbose=False)
        result["test"] = _floats(tested[0]) if tested else None
    result["per_class_accuracy"] = getattr(model, "per_class_accuracy", {})
    result["failed_files"] = model.failure_report()
    if trainer.is_global_zero:
        from .reports import training_curves

        curves = training_curves(trainer, out)
        result["curves"] = str(curves) if curves else None
        write_json(out / "metrics.json", result)
        _print_train_summary(result, out)
    return result


def resume_checkpoint(cfg: "DictConfig", out: Path) -> str | None:
    """``resume=true`` or ``ckpt_path=last``: the run directory's last checkpoint; any other ``ckpt_path`` as is."""
    path = cfg.get("ckpt_path")
    if not cfg.get("resume", False) and path != "last":
        return str(_checkpoint(path)) if path else None
    from .checkpoint import find_resume_checkpoint

    found = find_resume_checkpoint(out)
    if found is None:
        raise ConfigError(f"resume=true but {out} holds no checkpoint: pass the interrupted run's directory, "
                          f"e.g. hydra.run.dir=runs/train/NAME resume=true")
    return str(found)


def _print_train_summary(result: Mapping[str, Any], out: Path) -> None:
    from rich.console import Console

    con = Console(stderr=False, soft_wrap=True)
    con.print(f"[bold]flashvid train[/bold]: {result['epochs']} epochs, run directory {out}")
    if result.get("best_by") and result.get("best_score") is not None:
        con.print(f"  best {result['best_by']} {result['best_score']:.4f}: {result['best_checkpoint']}")
    if result["test"]:
        t = result["test"]
        con.print(f"  test (best checkpoint): top-1 {t.get('test/acc', float('nan')):.4f}  "
                  f"top-5 {t.get('test/acc5', float('nan')):.4f}  "
                  f"mean class {t.get('test/mean_class_acc', float('nan')):.4f}")
    con.print(f"  metrics: {out / 'metrics.json'}")
    if result.get("curves"):
        con.print(f"  curves: {result['curves']}")


def _checkpoint(path: Any) -> str:
    p = Path(str(path)).expanduser()
    if not p.exists():
        raise ConfigError(f"ckpt_path '{path}' does not exist (train writes RUN/checkpoints/best.ckpt and last.ckpt)")
    return str(p)


def load_classifier(path: str) -> Any:
    """``VideoClassifier.load_from_checkpoint`` on the CPU, with ``torch.load(weights_only=True)`` only: a checkpoint
    whose pickle carries code is refused, never run. Class names come from the checkpoint's ``flashvid`` record
    when its hyperparameters lack them (checkpoints of flashvid 0.1.0 keep them only there)."""
    from .checkpoint import CheckpointError, load_checkpoint, require_training_checkpoint
    from .classifier import VideoClassifier

    try:
        ck = load_checkpoint(path, mmap=True)
        require_training_checkpoint(ck, path)
    except CheckpointError as e:
        raise ConfigError(str(e)) from None
    labels = (ck.get("flashvid") or {}).get("labels")
    kwargs = {"labels": labels} if labels and "labels" not in (ck.get("hyper_parameters") or {}) else {}
    del ck
    return VideoClassifier.load_from_checkpoint(path, map_location="cpu", weights_only=True, **kwargs)


def run_test(cfg: "DictConfig") -> dict[str, Any]:
    """Video-level accuracy of a checkpoint; views per video: data.num_clips x data.num_crops."""
    ckpt = _checkpoint(cfg.ckpt_path)
    validate(cfg, ["data", "trainer", "callbacks"])
    model = load_classifier(ckpt)
    dm = build(cfg.data, "data")
    if "test" not in dm.samples:
        raise ConfigError("no test videos: set data.test_folder=PATH (data=folders) or data.test_file=LIST "
                          "(data=csv), or use data=demo / data=ucf101")
    align_labels(dm, model.labels)
    out = output_dir()
    from .reports import TestReport, print_test_details

    details = TestReport(out, model.labels, decoder=dm.decoder)
    trainer = build(cfg.trainer, "trainer", callbacks=_callbacks(cfg, True, False, only="ProgressBar") + [details],
                    logger=False)
    metrics = trainer.test(model, datamodule=dm, verbose=False)
    m = _floats(metrics[0]) if metrics else {}
    report = {
        "checkpoint": ckpt, "num_videos": len(dm.samples["test"]), "num_classes": model.num_classes,
        "views_per_video": {"num_clips": int(dm.num_clips), "num_crops": int(dm.num_crops)},
        "top1": m.get("test/acc"), "top5": m.get("test/acc5"), "mean_class_accuracy": m.get("test/mean_class_acc"),
        "loss": m.get("test/loss"), "metrics": m, "per_class_accuracy": model.per_class_accuracy.get("test", {}),
        "failed_files": model.failure_report(), "report": details.summary,
    }
    if trainer.is_global_zero:
        write_json(out / "test_metrics.json", report)
        _print_test_report(report, out)
        if details.summary:
            print_test_details(details.summary)
    return report


def _print_test_report(r: Mapping[str, Any], out: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    v = r["views_per_video"]
    table = Table(title=f"flashvid test: {r['num_videos']} videos, {v['num_clips']} clip(s) x {v['num_crops']} "
                        f"crop(s) per video", title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    k = min(5, r["num_classes"])
    for name, value in (("top-1 accuracy", r["top1"]), (f"top-{k} accuracy", r["top5"]),
                        ("mean class accuracy", r["mean_class_accuracy"]), ("loss", r["loss"])):
        table.add_row(name, "n/a" if value is None else f"{value:.4f}")
    con = Console(soft_wrap=True)
    con.print(table)
    if r["failed_files"]["num_failed"]:
        con.print(f"[yellow]{r['failed_files']['num_failed']} video(s) could not be decoded and were skipped[/]")
    con.print(f"wrote {out / 'test_metrics.json'}")


PREDICT_FAILED = 3  # predictions were written, but some files could not be decoded


def run_predict(cfg: "DictConfig") -> int:
    """Classify files and folders with a checkpoint; prints a table and writes ``output`` (JSON)."""
    ckpt = _checkpoint(cfg.ckpt_path)
    from omegaconf import OmegaConf

    from .predictions import parse_predict_options, predict_to_output

    raw = OmegaConf.to_container(cfg.inputs, resolve=True) if OmegaConf.is_config(cfg.inputs) else cfg.inputs
    inputs = [str(x) for x in (raw if isinstance(raw, list) else [raw])]
    if not inputs:
        raise ConfigError("inputs is empty: inputs=[clip.mp4,folder/]")
    _check_writable(Path(str(cfg.output)))  # before any decoding: results are never computed only to be lost
    try:
        options = parse_predict_options(cfg)  # output format, window/stride, progress: checked before loading
        model = load_classifier(ckpt)
        results, path = predict_to_output(model, inputs, **options)
    except ValueError as e:  # e.g. a folder without videos, output=preds.txt
        raise ConfigError(str(e)) from None
    _print_predictions(results, path)
    if options["window"] is not None:
        from .timeline import print_segments

        print_segments(results)
    failed = sum(r.get("error") is not None for r in results)
    if failed:
        print(f"flashvid predict: {failed} of {len(results)} files could not be decoded (their 'error' above)",
              file=sys.stderr)
        return PREDICT_FAILED
    return 0


def _check_writable(path: Path) -> None:
    """Fail now, naming the fix, when ``path`` (a file to write at the end) cannot be created."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        ok = os.access(path.parent, os.W_OK) and not path.is_dir() and (not path.exists() or os.access(path, os.W_OK))
    except OSError as e:
        raise ConfigError(f"cannot write {path} ({e.strerror}): choose another output=PATH") from None
    if not ok:
        raise ConfigError(f"cannot write {path} (not writable{', a directory' if path.is_dir() else ''}): "
                          "choose another output=PATH")


def _print_predictions(results: Sequence[Mapping[str, Any]], path: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    # paths shown relative to the folder all inputs share (the JSON keeps them as given)
    parents = [os.path.dirname(os.path.abspath(r["path"])) for r in results]
    common = os.path.commonpath(parents) if parents else ""
    table = Table(title=f"flashvid predict: {len(results)} video(s) in {common}", title_justify="left")
    for col, kw in (("video", {"overflow": "fold"}), ("prediction", {}), ("score", {"justify": "right"}),
                    ("runners-up", {})):
        table.add_column(col, **kw)
    for r in results:
        shown = os.path.relpath(os.path.abspath(r["path"]), common) if common else r["path"]
        if r.get("error"):
            table.add_row(shown, "[red]unreadable[/]", "", str(r["error"])[:80])
            continue
        others = ", ".join(f"{t['label']} {t['score']:.2f}" for t in r["top_k"][1:3])
        table.add_row(shown, str(r["label"]), f"{r['score']:.3f}", others)
    longest = max((len(os.path.relpath(os.path.abspath(r["path"]), common)) for r in results), default=0)
    con = Console(soft_wrap=False, width=None if sys.stdout.isatty() else max(120, longest + 75))
    con.print(table)
    con.print(f"wrote {path}")


def run_backbones(cfg: "DictConfig") -> list[dict[str, Any]]:
    """The registry as a table (or JSON): frames, sampling rate, crop, mean/std, layout, weights, config name."""
    from omegaconf import OmegaConf

    from .models import get_backbone_spec, list_backbones

    if cfg.format not in ("table", "json"):
        raise ConfigError(f"format must be 'table' or 'json', got {cfg.format!r}")
    names = list_backbones(str(cfg.pattern), cfg.family)
    if not names:
        families = sorted({get_backbone_spec(n).family for n in list_backbones()})
        raise ConfigError(f"no backbone matches pattern={cfg.pattern!r} family={cfg.family!r}. "
                          f"Families: {', '.join(families)}")
    configs: dict[str, str] = {}
    for f in sorted((config_dir() / "model").glob("*.yaml")):
        backbone = OmegaConf.load(f).get("backbone")
        if isinstance(backbone, str) and backbone not in configs:
            configs[backbone] = f"model={f.stem}"
    rows = []
    for n in names:
        s = get_backbone_spec(n).summary()
        s["config"] = configs.get(n, f"model=generic model.backbone={n}")
        rows.append(s)
    if cfg.format == "json":
        print(json.dumps(rows, indent=2))
        return rows
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"flashvid backbones ({len(rows)}): the clip each one takes", title_justify="left")
    for col in ("name", "family", "frames x rate", "crop", "mean / std", "layout", "pretrained weights", "select with"):
        table.add_column(col, overflow="fold")
    for r in rows:
        mean = "/".join(f"{x:g}" for x in r["mean"])
        std = "/".join(f"{x:g}" for x in r["std"])
        frames = f"{r['frames']} x {r['sampling_rate']:g}"
        if r.get("slowfast_alpha"):
            frames += f" (slow 1/{r['slowfast_alpha']})"
        weights = r["weights"] or "none"
        if "://" in weights:  # host and file name are enough on screen; format=json has the full URL
            weights = f"{weights.split('://')[1].split('/')[0]}/.../{weights.rsplit('/', 1)[1]}"
        table.add_row(r["name"], r["family"], frames, str(r["crop_size"]), f"{mean}\n{std}", r["layout"],
                      weights, r["config"])
    Console(width=None if sys.stdout.isatty() else 160).print(table)
    print("frames x rate: frames per clip x stride between them at 30 fps; override with data.num_frames=... etc.")
    return rows


def run_doctor(cfg: "DictConfig") -> Any:
    """``flashvid.doctor.main(cfg)`` with the train config (data, model...), when that module exists."""
    import importlib

    try:
        doctor = importlib.import_module(f"{__package__}.doctor")
    except ModuleNotFoundError as e:
        if e.name != f"{__package__}.doctor":
            raise
        raise ConfigError("`flashvid doctor` is not available in this version of flashvid "
                          "(the flashvid.doctor module is missing)") from None
    return doctor.main(cfg)


HANDLERS: dict[str, Callable[["DictConfig"], Any]] = {
    "train": run_train, "test": run_test, "predict": run_predict, "backbones": run_backbones,
    "doctor": run_doctor,
    "prepare": lambda cfg: __import__("flashvid.data.prepare", fromlist=["run_prepare"]).run_prepare(cfg),
    "export": lambda cfg: __import__("flashvid.export", fromlist=["run_export"]).run_export(cfg),
    "embed": lambda cfg: __import__("flashvid.embed", fromlist=["run_embed"]).run_embed(cfg),
    "pretrain": lambda cfg: __import__("flashvid.pretraining", fromlist=["run_pretrain"]).run_pretrain(cfg),
}
