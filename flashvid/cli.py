"""The ``flashvid`` command: ``flashvid {train,test,predict,backbones,doctor} [group=option] [key=value] [-m]``.

A thin dispatcher. Each subcommand is a Hydra app over ``conf/<command>.yaml`` and the groups beside it (data,
model, trainer, finetune, callbacks, logger, experiment; the model group's options, one per backbone registry entry,
are generated into Hydra's ConfigStore by :mod:`flashvid.commands.model_configs`), so overrides, ``--cfg job`` and
``-m`` sweeps work as in any Hydra app; its handler, ``run_<command>(cfg)``, lives in its own module
(``flashvid/commands/<command>.py``) and is imported only when the command runs. Before that, the overrides and
every ``_target_``'s arguments are checked (:mod:`flashvid.commands.config`), so a typo fails at once with the valid
choices, a short message and exit status 2 (``FLASHVID_DEBUG=1`` shows the traceback instead). Nothing heavy is
imported at module level: ``--help`` and config mistakes answer in well under a second (``scripts/time_help.sh``
measures it).

A new subcommand: a ``run_<command>(cfg)`` handler in its own module, a ``conf/<command>.yaml``, and two entries
here: its one-line description in COMMANDS and ``"<command>": "<module>:run_<command>"`` in HANDLERS.
"""

from __future__ import annotations

import difflib
import importlib
import logging
import os
import sys
import warnings
from typing import TYPE_CHECKING, Any, Callable, Sequence

# Re-exported: the names tests, configs (``_target_: flashvid.cli.demo_data``), scripts and command modules written
# before flashvid/commands/ existed use. These modules import the standard library only.
from .commands.config import (  # noqa: F401
    ConfigError,
    _compose,
    accepted_arguments,
    build,
    check_arguments,
    check_backbone,
    check_run_dir,
    clip_overrides,
    command_help,
    config_dir,
    precheck,
    register_resolvers,
    validate,
)
from .commands.demo import demo_data  # noqa: F401
from .commands.logging_state import logging_as_found
from .commands.model_configs import register_model_configs
from .commands.runs import align_labels, is_rank_zero, load_classifier, output_dir, write_json  # noqa: F401

if TYPE_CHECKING:
    from omegaconf import DictConfig

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
SIGPIPE_EXIT = 141  # 128 + SIGPIPE: what a shell reports for a command whose reader closed the pipe


# ---------------------------------------------------------------------------------------------------- entry point
def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch on the first argument; the rest goes to that subcommand's Hydra app."""
    try:
        return _main(list(sys.argv[1:] if argv is None else argv))
    except BrokenPipeError:
        # the reader left (`flashvid train --help | head`): stop quietly, as a command killed by SIGPIPE does, and
        # point stdout at /dev/null so the interpreter's final flush does not raise the same error again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return SIGPIPE_EXIT


def _main(args: list[str]) -> int:
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
        register_model_configs(conf)  # model=<backbone>: one option per registry entry (Hydra's ConfigStore)
        precheck(cmd, conf, rest)
        if "--help" in rest or "-h" in rest:
            print(command_help(cmd, conf, rest))
            return 0
        check_run_dir(cmd, conf, rest)
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
        # logging as found afterwards, for a caller that goes on in this process (a notebook, a test): Hydra's
        # handlers hold this command's streams and run log, and Lightning's console handlers must not keep
        # writing to whatever sys.stderr is later (commands/logging_state.py)
        with logging_as_found():
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


# Deprecations inside third-party code that a flashvid user cannot act on (the fix is upstream's), by message
THIRD_PARTY_DEPRECATIONS = (
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",  # Lightning 2.6's _pytree on torch 2.14
    r"'saved_variables' is deprecated",  # pytorchvideo's Swish (X3D)
    # torchvision 0.29 on its JPEG codec, which frame stores use (its successor, torchcodec's, has no CUDA decode
    # on the GPU machine); on every call, once per loader worker
    r"The image decoding and encoding capabilities of TorchVision are deprecated",
)
# Loggers that report their own progress at INFO level (the ONNX exporter: a dozen lines per export)
CHATTY_LOGGERS = ("onnx_ir", "onnxscript")


class _LightningPrintsItsOwn(logging.Filter):
    """Lightning adds a console handler to its ``lightning`` logger when imported, and its records also reach
    Hydra's console handler on the root logger: every line twice. This drops them from the root's console (the
    run's log file keeps them) whenever Lightning's own handler is there to print them."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name.startswith("lightning") and logging.getLogger("lightning").handlers)


def quiet_console() -> None:
    """One console line per log record, and no third-party warning or chatter a user cannot act on."""
    for pattern in THIRD_PARTY_DEPRECATIONS:
        warnings.filterwarnings("ignore", message=pattern)
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for h in logging.getLogger().handlers:
        if type(h) is logging.StreamHandler and not any(isinstance(f, _LightningPrintsItsOwn) for f in h.filters):
            h.addFilter(_LightningPrintsItsOwn())


def _task(cmd: str, argv: list[str]) -> Callable[["DictConfig"], None]:
    def task(cfg: "DictConfig") -> None:
        sys.argv = argv
        quiet_console()
        try:
            _state["result"] = handler(cmd)(cfg)
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

    from .rundir import RunDirectoryError

    if isinstance(e, InstantiationException):  # a failure inside a constructor that build() did not explain
        return None
    # errors of modules that import torch: looked up only when imported (then they can have been raised), so a
    # mistake found before torch loads is reported without loading it
    heavy = tuple(getattr(sys.modules[module], name) for module, name in (
        ("flashvid.failures", "TooManyFailedFiles"), ("flashvid.models.registry", "PretrainedWeightsUnavailable"))
        if module in sys.modules)
    if isinstance(e, (ConfigError, FileNotFoundError, NotADirectoryError, ModuleNotFoundError,
                      RunDirectoryError, OmegaConfBaseException, HydraException, *heavy)):
        return str(e).strip()
    return None


HANDLERS: dict[str, str | Callable[["DictConfig"], Any]] = {
    "train": "flashvid.commands.train:run_train",
    "test": "flashvid.commands.test:run_test",
    "predict": "flashvid.commands.predict:run_predict",
    "backbones": "flashvid.commands.backbones:run_backbones",
    "doctor": "flashvid.commands.doctor:run_doctor",
    "prepare": "flashvid.commands.prepare:run_prepare",
    "export": "flashvid.commands.export:run_export",
    "embed": "flashvid.commands.embed:run_embed",
    "pretrain": "flashvid.commands.pretrain:run_pretrain",
}


def handler(cmd: str) -> Callable[["DictConfig"], Any]:
    """The handler of ``cmd``: HANDLERS holds ``"module:function"`` (imported now, when the command runs) or a
    function."""
    target = HANDLERS[cmd]
    if callable(target):
        return target
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)
