"""Footage sets, by name: the real ones used in place from the shared folder (``real:<source>`` for each source
of ``realclips/``, ``flash_kinetics``), and synthetic ones made once with ``scripts/make_synth_footage.py``
(``synth:<variant>``: frame rates, portrait, bitrates, resolutions, UCF-shaped AVIs); each optionally converted
by ``flashvid prepare`` with any of its settings (:func:`prepared`)."""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
from pathlib import Path
from typing import Any

from . import overrides
from .record import BenchError

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"

# variant -> make_synth_footage.make keywords; None height: --synth-height (default 720), 16:9
SYNTH: dict[str, dict[str, Any]] = {
    "720p": {"height": 720},
    "1080p": {"height": 1080},
    "fps24": {"fps": "24"},
    "fps25": {"fps": "25"},
    "fps29.97": {"fps": "30000/1001"},
    "fps60": {"fps": "60"},
    "portrait": {"portrait": True},           # phone video: 9:16
    "bitrate_high": {"crf": 16},              # x264 crf 16: ~3x the bits of the default 23
    "bitrate_low": {"crf": 35},               # crf 35: ~1/5 of them (web re-encodes)
    "ucf": {"width": 320, "height": 240, "fps": "25", "gop": 12, "codec": "mpeg4"},  # UCF101-shaped Xvid AVIs
}


@dataclasses.dataclass(frozen=True)
class FootageSet:
    name: str
    train: Path          # class folders
    synthetic: bool = False


def add_arguments(p: argparse.ArgumentParser, *, classes: int = 4, per_class: int = 4,
                  prepare_workers: int | None = None) -> None:
    """The options :func:`get` and :func:`prepared` read: where the sets are and how synthetic ones are made."""
    f = p.add_argument_group("footage")
    f.add_argument("--shared", type=Path, default=SHARED, help="the shared folder (realclips/, flash_kinetics/), "
                   "used in place (default %(default)s)")
    f.add_argument("--data", type=Path, default=Path("/tmp/flashvid-bench"),
                   help="where synthetic sets and prepared copies are made, kept for later runs (default %(default)s)")
    f.add_argument("--synth-height", type=int, default=720)
    f.add_argument("--synth-seconds", type=float, default=10)
    f.add_argument("--synth-classes", type=int, default=classes)
    f.add_argument("--synth-per-class", type=int, default=per_class)
    f.add_argument("--prepare-workers", type=int, default=prepare_workers)


def shared_sets(shared: Path) -> dict[str, Path]:
    """Every kind in the shared folder: one set per source of ``realclips/`` and ``flash_kinetics/train``."""
    found: dict[str, Path] = {}
    real = shared / "realclips"
    if real.is_dir():
        for d in sorted(p for p in real.iterdir() if p.is_dir()):
            found[f"real:{d.name}"] = d
    if (shared / "flash_kinetics" / "train").is_dir():
        found["flash_kinetics"] = shared / "flash_kinetics" / "train"
    return found


def known_names(shared: Path) -> list[str]:
    return [*shared_sets(shared), *(f"synth:{v}" for v in SYNTH)]


def resolve(names: str, shared: Path) -> list[str]:
    """``--sets`` -> set names; ``real`` is every shared set, ``synth`` every synthetic variant, ``all`` both; a
    folder of class folders is a set of its own, used in place."""
    real = list(shared_sets(shared))
    out: list[str] = []
    for name in (n.strip() for n in names.split(",") if n.strip()):
        expanded = {"real": real, "synth": [f"synth:{v}" for v in SYNTH], "all": known_names(shared)}.get(name, [name])
        for n in expanded:
            if not (n.startswith("synth:") and n[6:] in SYNTH or n in real or Path(n).is_dir()):
                raise BenchError(f"--sets {n}: neither a folder nor a footage set (here: "
                                 f"{', '.join(known_names(shared))}; the shared sets come from --shared {shared})")
            if n not in out:
                out.append(n)
    return out


def get(name: str, args: Any) -> FootageSet:
    """The set's train folder, making a synthetic set on first use (kept in ``--data`` for later runs)."""
    if not name.startswith("synth:"):
        return FootageSet(name, shared_sets(Path(args.shared)).get(name) or Path(name))
    import make_synth_footage  # scripts/

    kw = dict(SYNTH[name[6:]])
    height = kw.pop("height", args.synth_height)
    width = kw.pop("width", None) or round(height * 16 / 9 / 2) * 2
    if kw.pop("portrait", False):
        width, height = height, width
    tag = f"{name[6:]}_{width}x{height}_{args.synth_seconds:g}s_{args.synth_classes}x{args.synth_per_class}"
    root = Path(args.data) / "synth" / tag
    make_synth_footage.make(str(root), args.synth_per_class, args.synth_classes, width, height,
                            seconds=args.synth_seconds, **kw)
    return FootageSet(name, root / "train", synthetic=True)


def describe(folder: Path) -> dict[str, Any]:
    """What decoding cost depends on: files, sizes, codecs, frame rates, bitrates, keyframe intervals."""
    from flashvid.data import decoding
    from flashvid.data.sources import list_videos

    files = list_videos(folder)
    if not files:
        raise BenchError(f"{folder}: no videos (class folders of video files expected)")
    kinds: dict[str, int] = {}
    mbps, gops, secs = [], [], []
    for f in files:
        with decoding.open_container(f) as c:
            s = c.streams.video[0]
            cc = s.codec_context
            fps = float(s.average_rate or s.guessed_rate or 0)
            kind = f"{cc.name} {cc.width}x{cc.height} {fps:.4g}fps"
            kinds[kind] = kinds.get(kind, 0) + 1
            dur = float(c.duration / 1e6) if c.duration else 0.0
            if dur:
                secs.append(dur)
                mbps.append(os.path.getsize(f) * 8 / dur / 1e6)
        gop = decoding.keyframe_interval(f)
        if gop:
            gops.append(gop)
    return {"folder": str(folder), "files": len(files), "mb": round(sum(os.path.getsize(f) for f in files) / 1e6, 1),
            "kinds": kinds, "seconds_median": round(statistics.median(secs), 2) if secs else None,
            "mbit_per_s_median": round(statistics.median(mbps), 2) if mbps else None,
            "keyframe_interval_median": statistics.median(gops) if gops else None}


def prepared(fset: FootageSet, spec: str, backbone: str | None, args: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """``flashvid prepare`` of the set with ``spec``'s settings (``"prepared"``: its defaults; otherwise
    ``key=value`` overrides as for ``flashvid prepare``, ``prepare.`` optional: a :class:`PrepareSettings` field
    goes to the settings, any other key to :func:`~flashvid.data.prepare.prepare`, e.g. a new ``format``), sized
    for ``backbone`` as ``flashvid prepare model=...`` does (None: prepare's defaults). Returns the data options
    that train on the copy (prepare's own ``data_options``) and prepare's report. The copy is kept in ``--data``;
    prepare's manifest makes a later run convert nothing."""
    from flashvid.data.prepare import PrepareSettings, prepare, settings_for

    opts = {} if spec == "prepared" else overrides.parse(spec, "prepare.", "--prepare")
    fields = {f.name for f in dataclasses.fields(PrepareSettings)}
    settings = settings_for({}, backbone, **{k: v for k, v in opts.items() if k in fields})
    call = {k: v for k, v in opts.items() if k not in fields}
    call.setdefault("workers", args.prepare_workers)
    out = Path(args.data) / "prepared" / f"{overrides.slug(fset.name)}__{backbone or 'default'}__{overrides.slug(spec)}"
    try:
        report = prepare(out, train_folder=fset.train, settings=settings, progress=False, **call)
    except TypeError as e:
        raise BenchError(f"--prepare {spec!r}: {e} (keys: PrepareSettings fields {sorted(fields)} or prepare()'s "
                         "keywords)") from None
    rep = {k: v for k, v in report.to_dict().items() if k != "files"}
    data = overrides.parse(report.data_options, "data.", "prepare's data options")
    return data, rep
