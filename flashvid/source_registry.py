"""Data sources by name: class folders, list files, UCF101 splits, the demo, and any source added here.

A source is a reader function registered with :func:`register_source`: it takes the source's own arguments (the
keys of its ``conf/data/<name>.yaml`` besides the loader and clip settings) and returns a :class:`SourceRead`.
Everything else works from the registry: ``VideoClassificationData.from_source`` (the ``_target_`` of every
``conf/data`` yaml, with ``source: <name>``), ``flashvid prepare``, the argument check of the data config and the
path check before torch loads. Adding a source is one reader here plus one ``conf/data/<name>.yaml``.

Lives outside :mod:`flashvid.data` because importing that package loads torch (its ``__init__`` imports the
datamodule: seconds), and the command line checks a data config's paths before that. The readers import
:mod:`flashvid.data` only when they run.
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Collection, Mapping, Sequence

if TYPE_CHECKING:
    from .data.sources import VideoSample


@dataclass
class SourceRead:
    """What a source holds: samples per split (train, val, test, predict), the class names, what it found odd but
    accepted (``flashvid doctor`` lists it), and for ``flashvid prepare``, the copy's layout: ``folders`` (one
    class folder per split: mirrored), ``ucf101`` (split files: rewritten), else ``lists`` (path,label list files,
    which hold any source), the folder each split's paths are relative to, and what the source was read from."""

    splits: dict[str, list["VideoSample"]]
    labels: list[str]
    notes: list[str] = field(default_factory=list)
    layout: str = "lists"
    roots: dict[str, Path] = field(default_factory=dict)
    inputs: tuple[Path, ...] = ()


@dataclass(frozen=True)
class DataSource:
    """A registered source: its reader, the arguments that name files or folders (checked to exist before anything
    heavy runs), and whether it writes its data on first use (the demo: its paths need not exist yet)."""

    name: str
    read: Callable[..., SourceRead]
    paths: tuple[str, ...]
    generates: bool = False

    @property
    def arguments(self) -> set[str]:
        """The reader's keyword arguments: the keys a data config gives this source."""
        return set(inspect.signature(self.read).parameters)


_SOURCES: dict[str, DataSource] = {}


def register_source(name: str, paths: Sequence[str] = (), generates: bool = False
                    ) -> Callable[[Callable[..., SourceRead]], Callable[..., SourceRead]]:
    """Register the decorated reader as source ``name`` (``data.source=name``)."""
    def wrap(read: Callable[..., SourceRead]) -> Callable[..., SourceRead]:
        _SOURCES[name] = DataSource(name, read, tuple(paths), generates)
        return read
    return wrap


def list_sources() -> list[str]:
    return sorted(_SOURCES)


def get_source(name: str) -> DataSource:
    """The source registered as ``name``; a ``ValueError`` naming the registered ones otherwise."""
    if name not in _SOURCES:
        raise ValueError(f"unknown data source {name!r}: choose one of {', '.join(list_sources())} (or register one "
                         "in flashvid/source_registry.py)")
    return _SOURCES[name]


def path_arguments(data: Mapping[str, Any]) -> tuple[str, ...]:
    """The keys of a data config that name files or folders which must exist: its source's, none for a source that
    writes its data, every registered source's when the config names no source (a ``from_folders`` target)."""
    name = data.get("source")
    if isinstance(name, str):
        source = get_source(name)
        return () if source.generates else source.paths
    return tuple(dict.fromkeys(p for s in _SOURCES.values() if not s.generates for p in s.paths))


def read_source(name: str, **arguments: Any) -> SourceRead:
    """Read source ``name`` with its arguments (``arguments`` holding others is an error naming them)."""
    source = get_source(name)
    unknown = sorted(set(arguments) - source.arguments)
    if unknown:
        raise TypeError(f"data source {name!r} takes no argument {', '.join(unknown)}; its arguments: "
                        f"{', '.join(sorted(source.arguments))}")
    return source.read(**arguments)


def configured_source(data: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """A data config's source (``data.source``; a config without one: the built-in its keys tell) and the keys of it
    that the source takes and that are set."""
    name = str(data["source"]) if data.get("source") else infer_source(data)
    return name, {k: data[k] for k in get_source(name).arguments if data.get(k) is not None}


def infer_source(arguments: Mapping[str, Any]) -> str:
    """The built-in source told by which arguments are set, for calls that name none (``prepare(train_folder=...)``):
    ``*_folder`` class folders, ``*_file`` list files, ``annotations_dir`` UCF101."""
    given = {k for k, v in arguments.items() if v is not None}
    kinds = [name for name, keys in (("folders", {"train_folder", "val_folder", "test_folder"}),
                                     ("csv", {"train_file", "val_file", "test_file"}),
                                     ("ucf101", {"annotations_dir"})) if given & keys]
    if len(kinds) != 1:
        raise ValueError("prepare needs one source: *_folder (class folders), *_file (list files) or "
                         "root + annotations_dir (UCF101)")
    return kinds[0]


# ---------------------------------------------------------------------------------------------------- built-ins
@register_source("folders", paths=("train_folder", "val_folder", "test_folder", "predict_folder"))
def read_folders(train_folder: str | os.PathLike | None = None, val_folder: str | os.PathLike | None = None,
                 test_folder: str | os.PathLike | None = None, predict_folder: str | os.PathLike | None = None,
                 labels: Sequence[str] | None = None, extensions: Collection[str] | None = None) -> SourceRead:
    """``<split>/<class>/<video>`` folders (``labels`` fixes the class list); ``predict_folder``: unlabelled files
    and folders; ``extensions``: the file types listed (default: the ones training reads)."""
    from .data.sources import VIDEO_EXTENSIONS, collect_paths, scan_class_folders

    exts = frozenset(extensions) if extensions is not None else VIDEO_EXTENSIONS
    splits: dict[str, list[VideoSample]] = {}
    folders = {k: v for k, v in (("train", train_folder), ("val", val_folder), ("test", test_folder)) if v}
    notes: list[str] = []
    for split, folder in folders.items():
        splits[split], labels = scan_class_folders(folder, labels, what=f"{split}_folder", notes=notes,
                                                   extensions=exts)
    roots = {k: Path(v) for k, v in folders.items()}
    if predict_folder is not None:
        splits["predict"] = collect_paths(predict_folder)
        # prepare mirrors the predict files under the folder (or beside the file) they were given as
        roots["predict"] = Path(predict_folder) if Path(predict_folder).is_dir() else Path(predict_folder).parent
    return SourceRead(splits, list(labels or []), notes, "folders", roots, tuple(Path(v) for v in folders.values()))


@register_source("csv", paths=("train_file", "val_file", "test_file", "root"))
def read_lists(train_file: str | os.PathLike | None = None, val_file: str | os.PathLike | None = None,
               test_file: str | os.PathLike | None = None, root: str | os.PathLike | None = None,
               labels: Sequence[str] | None = None, allow_outside_root: bool = True) -> SourceRead:
    """``path,label`` list files (labels as names or indices; ``a;b`` cells make multi-label data); relative paths
    resolve against ``root`` (default: the list file's folder), paths outside it warn or, ``allow_outside_root=
    False``, fail."""
    from .data.sources import as_multi_label, check_outside_root, read_csv

    splits: dict[str, list[VideoSample]] = {}
    notes: list[str] = []
    roots: dict[str, Path] = {}
    files = {k: v for k, v in (("train", train_file), ("val", val_file), ("test", test_file)) if v is not None}
    for split, f in files.items():
        splits[split], labels = read_csv(f, root, labels, notes=notes)
        roots[split] = Path(root) if root is not None else Path(f).parent
        note = check_outside_root(splits[split], root, f"{split} list {str(f)!r}", allow_outside_root)
        if note:
            notes.append(note)
    if any(isinstance(s.label, tuple) for samples in splits.values() for s in samples):
        splits = {k: as_multi_label(v) for k, v in splits.items()}
    inputs = tuple(Path(p) for p in [*files.values(), *([root] if root is not None else [])])
    return SourceRead(splits, list(labels or []), notes, "lists", roots, inputs)


@register_source("ucf101", paths=("root", "annotations_dir"))
def read_ucf101(root: str | os.PathLike, annotations_dir: str | os.PathLike, fold: int = 1) -> SourceRead:
    """UCF101's ``classInd.txt`` and ``trainlist0N``/``testlist0N`` (the test list is the test split)."""
    from .data.sources import read_ucf101_split

    train, test, labels = read_ucf101_split(root, annotations_dir, fold)
    return SourceRead({"train": train, "test": test}, labels, [], "ucf101", {"train": Path(root), "test": Path(root)},
                      (Path(root), Path(annotations_dir)))


@register_source("demo", generates=True)
def read_demo(root: str | os.PathLike = "demo_data", generate: Mapping[str, Any] | None = None,
              train_folder: str | os.PathLike | None = None, val_folder: str | os.PathLike | None = None,
              test_folder: str | os.PathLike | None = None, extensions: Collection[str] | None = None) -> SourceRead:
    """flashvid's generated demo videos in class folders under ``root``, written on first use (``generate``: the
    arguments of :func:`flashvid.data.make_demo_dataset`)."""
    from .data.demo import ensure_demo_data

    ensure_demo_data(root, **dict(generate or {}))
    return read_folders(train_folder, val_folder, test_folder, extensions=extensions)
