"""The measurement matrix shared by the data-reading subcommands (loader, train, predict, footage): models x
footage sets x store formats x loader workers x steps per epoch x decode device x data-option variants, as options,
and the datamodule each configuration reads through."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import itertools
import math
from pathlib import Path
from typing import Any

from . import footage, overrides
from .record import BenchError


def csv_ints(text: str) -> list[int | None]:
    """``8,16`` -> ``[8, 16]``; ``auto`` -> ``None`` (flashvid's choice)."""
    try:
        return [None if t.strip() == "auto" else int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated integers (or auto)") from None


def add_arguments(p: argparse.ArgumentParser, *, training: bool = True) -> None:
    g = p.add_argument_group("matrix (comma lists and repeated options multiply)")
    g.add_argument("--model", "--models", dest="models", default="videomae_base,x3d_m",
                   help="registered backbones or conf/model names, e.g. videomae_base,x3d_m; tiny for a CPU smoke run")
    g.add_argument("--sets", default="flash_kinetics",
                   help="footage sets: real:<source> (each of SHARED/realclips), flash_kinetics, synth:<variant> "
                        f"({', '.join(footage.SYNTH)}); real, synth, all (default %(default)s)")
    g.add_argument("--prepare", action="append", default=None, metavar="SPEC",
                   help="store format, repeatable: raw (the files as they are), prepared (flashvid prepare's "
                        "defaults) or its key=value overrides, e.g. --prepare format=frames (default: raw)")
    g.add_argument("--workers", type=csv_ints, default=[None], help="loader workers, e.g. 8,16 (default: flashvid's)")
    g.add_argument("--decode-device", default="cpu", help="cpu, gpu or cpu,gpu: where frame stores (--prepare "
                   "format=frames) decode their JPEGs, data.jpeg_decode=workers or device (nvJPEG); video copies "
                   "and raw footage decode on the CPU either way, so gpu measures frame stores only")
    g.add_argument("--data-override", action="append", default=None, metavar="OVERRIDES",
                   help="a variant of data options, repeatable (each is compared), Hydra style: "
                        "--data-override 'data.clips_per_video=2 data.keyframe_aligned=true'")
    if training:
        g.add_argument("--steps-per-epoch", type=csv_ints, default=[None],
                       help="e.g. 4,12,37,93: the train list cut or repeated to that many steps, several epochs "
                            "timed (epoch boundaries included); default one epoch as long as the run")
    footage.add_arguments(p)
    r = p.add_argument_group("run")
    r.add_argument("--batch-size", type=int, default=32, help="clips per step")
    r.add_argument("--decoder", default="auto", choices=["auto", "pyav", "torchcodec"])
    r.add_argument("--warmup", type=int, default=6, help="steps/batches left out of the timing (at least workers+1)")
    r.add_argument("--steps", type=int, default=20, help="timed steps/batches, at most")
    r.add_argument("--min-timed", type=int, default=6)
    r.add_argument("--max-timed-s", type=float, default=20, help="stop timing a configuration after this long")
    if training:
        r.add_argument("--epochs", type=int, default=2, help="with --steps-per-epoch: epochs timed (default 2)")
        r.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                       help="torch.compile VideoMAE (default: on a GPU)")
        r.add_argument("--precision", default=None, help="default: bf16-mixed on a GPU, 32-true on the CPU")


@dataclasses.dataclass(frozen=True)
class Config:
    model: str
    set: str
    store: str = "raw"
    workers: int | None = None
    steps_per_epoch: int | None = None
    decode_device: str = "cpu"
    data_variant: str = ""

    def label(self) -> str:
        parts = [self.set]
        parts += [] if self.store == "raw" else [f"store={self.store}"]
        parts += [] if self.workers is None else [f"w{self.workers}"]
        parts += [] if self.steps_per_epoch is None else [f"spe{self.steps_per_epoch}"]
        parts += [] if self.decode_device == "cpu" else [f"decode={self.decode_device}"]
        parts += [self.data_variant] if self.data_variant else []
        return " ".join(parts)


def backbone_of(model: str) -> str:
    """A ``model=`` option's short name (``tiny``) -> its backbone (``tiny_r2plus1d``); a registered backbone as it
    is (the model options are generated from the registry: flashvid/commands/model_configs.py)."""
    from flashvid.commands.model_configs import SHORT_NAMES

    return SHORT_NAMES.get(model, model)


def configs(args: argparse.Namespace) -> list[Config]:
    """Every configuration of the matrix, checked before anything runs (a bad option fails in seconds)."""
    from flashvid.models import list_backbones

    models = [backbone_of(m.strip()) for m in args.models.split(",") if m.strip()]
    for m in models:
        if m not in list_backbones():
            raise BenchError(f"--model {m}: not a registered backbone (`flashvid backbones` lists them)")
    devices = [d.strip() for d in args.decode_device.split(",") if d.strip()]
    for d in devices:
        if d not in ("cpu", "gpu"):
            raise BenchError(f"--decode-device {d}: choose cpu or gpu")
    variants = args.data_override or [""]
    for v in variants:  # options first: they need no files, so their errors do not wait on (or hide behind) the sets
        check_data_options(overrides.parse(v, "data.", "--data-override"), "--data-override")
    sets = footage.resolve(args.sets, Path(args.shared))
    stores = args.prepare or ["raw"]
    if "gpu" in devices and not any(is_frame_store(s) for s in stores):
        raise BenchError("--decode-device gpu: only frame stores decode on the GPU (data.jpeg_decode=device); add "
                         "--prepare format=frames (video copies and raw footage decode on the CPU)")
    every = [Config(*c) for c in itertools.product(models, sets, stores, args.workers,
                                                    getattr(args, "steps_per_epoch", [None]), devices, variants)]
    return [c for c in every if c.decode_device == "cpu" or is_frame_store(c.store)]  # gpu: frame stores only


def check_devices(configs: list[Config]) -> None:
    """A GPU-decoded configuration needs a GPU that decodes JPEG (a CUDA build of torchvision with nvJPEG)."""
    if not any(c.decode_device == "gpu" for c in configs):
        return
    import torch

    from flashvid.data.device_decode import device_decodes_jpeg

    if not torch.cuda.is_available():
        raise BenchError("--decode-device gpu: no CUDA device here; use --decode-device cpu")
    ok, why = device_decodes_jpeg(torch.device("cuda"))
    if not ok:
        raise BenchError(f"--decode-device gpu: this GPU cannot decode JPEG ({why}); use --decode-device cpu")


def is_frame_store(store: str) -> bool:
    """Whether ``--prepare``'s ``store`` spec makes a JPEG frame store (``format=frames``)."""
    if store in ("raw", "prepared"):
        return False
    return overrides.parse(store, "prepare.", "--prepare").get("format") == "frames"


def data_options() -> set[str]:
    from flashvid import VideoClassificationData

    params = inspect.signature(VideoClassificationData.__init__).parameters
    folders = inspect.signature(VideoClassificationData.from_folders).parameters
    return (set(params) | set(folders)) - {"self", "cls", "kwargs"}


def check_data_options(opts: dict[str, Any], what: str) -> None:
    unknown = sorted(set(opts) - data_options())
    if unknown:
        raise BenchError(f"{what}: data.{unknown[0]} is not an option of flashvid's VideoClassificationData "
                         f"(options: {', '.join(sorted(data_options()))})")


class Sources:
    """Footage sets and their prepared copies, made once per run (and kept in ``--data`` across runs)."""

    def __init__(self, args: argparse.Namespace, record: Any):
        self.args, self.record = args, record
        self.sets: dict[str, footage.FootageSet] = {}
        self.stores: dict[tuple[str, str, str], dict[str, Any]] = {}

    def data_kwargs(self, c: Config) -> dict[str, Any]:
        """The datamodule keywords of ``c``'s footage, store, device and data variant (variant last: it wins)."""
        if c.set not in self.sets:
            self.sets[c.set] = footage.get(c.set, self.args)
            self.record.info(f"footage/{c.set}", footage.describe(self.sets[c.set].train))
        fset = self.sets[c.set]
        kw: dict[str, Any] = {"train_folder": fset.train}
        if c.store != "raw":
            key = (c.set, c.store, c.model)
            if key not in self.stores:
                data, report = footage.prepared(fset, c.store, c.model, self.args)
                self.stores[key] = data
                self.record.info(f"prepare/{c.set}/{c.store}/{c.model}", report)
            kw.update(self.stores[key])
        if is_frame_store(c.store):  # where its JPEGs decode; video files decode in the workers either way
            kw["jpeg_decode"] = "device" if c.decode_device == "gpu" else "workers"
        kw.update(decoder=self.args.decoder, num_workers=c.workers)
        return overrides.merge(kw, overrides.parse(c.data_variant, "data.", "--data-override"))


def fit_epoch(samples: list[Any], steps: int, per_step: int, exact: bool) -> list[Any]:
    """The train list repeated (or, with ``exact``, cut) to ``steps`` steps of ``per_step`` videos."""
    need = steps * per_step
    if not samples:
        return samples
    out = samples * max(1, math.ceil(need / len(samples)))
    return out[:need] if exact else out
