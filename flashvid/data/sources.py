"""Where videos and labels come from: class folders, CSV/list files, UCF101 split files, or bare paths.

Every source ends as a list of :class:`VideoSample` plus the sorted class names. Labels are indices into those
names; predict-only samples carry ``label = -1``.
"""

from __future__ import annotations

import csv
import logging
import os
import random
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS: frozenset[str] = frozenset({".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg"})
UCF101_GROUP_PATTERN = r"_g(\d+)_"


@dataclass(frozen=True)
class VideoSample:
    path: str
    label: int = -1

    @property
    def name(self) -> str:
        return os.path.basename(self.path)


def is_video_file(path: str | os.PathLike) -> bool:
    p = Path(path)
    return p.suffix.lower() in VIDEO_EXTENSIONS and not p.name.startswith(".")


def _require_dir(folder: str | os.PathLike, what: str) -> Path:
    root = Path(folder).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"{what} {str(root)!r} does not exist: check the path (data.root / *_folder)")
    if not root.is_dir():
        raise NotADirectoryError(f"{what} {str(root)!r} is not a directory of class sub-folders")
    return root


def list_videos(folder: str | os.PathLike) -> list[str]:
    """Video files under ``folder`` (recursively, sorted), skipping hidden entries and non-videos.

    A directory named like a video (``x.mp4/``) is listed too, so that it is reported as unreadable rather
    than silently dropped.
    """
    out: list[str] = []
    for dirpath, dirnames, filenames in os.walk(os.fspath(folder), followlinks=True):
        out.extend(os.path.join(dirpath, d) for d in dirnames if is_video_file(d))
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and not is_video_file(d))
        out.extend(os.path.join(dirpath, name) for name in filenames if is_video_file(name))
    return sorted(out)


def scan_class_folders(folder: str | os.PathLike, labels: Sequence[str] | None = None,
                       what: str = "folder") -> tuple[list[VideoSample], list[str]]:
    """``folder/<class>/**/<video>`` into samples; ``labels`` fixes the class list (e.g. the train split's)."""
    root = _require_dir(folder, what)
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if labels is None:
        labels = classes
    else:
        unknown = sorted(set(classes) - set(labels))
        if unknown:
            raise ValueError(
                f"{what} {str(root)!r} has class folders not in the training classes: {unknown}. "
                f"Known classes: {list(labels)}"
            )
    label2id = {name: i for i, name in enumerate(labels)}
    samples = [VideoSample(p, label2id[c]) for c in classes for p in list_videos(root / c)]
    if not samples:
        raise ValueError(
            f"{what} {str(root)!r} has no videos: expected <class>/<video> with extensions "
            f"{', '.join(sorted(VIDEO_EXTENSIONS))}"
        )
    return samples, list(labels)


def read_csv(path: str | os.PathLike, root: str | os.PathLike | None = None, labels: Sequence[str] | None = None,
             path_column: str = "path", label_column: str = "label") -> tuple[list[VideoSample], list[str]]:
    """``path,label`` rows (header optional; comma, space or tab separated). Labels are names or indices."""
    csv_path = Path(path)
    if not csv_path.is_file():
        raise FileNotFoundError(f"list file {str(csv_path)!r} does not exist")
    base = Path(root) if root is not None else csv_path.parent
    rows: list[tuple[str, str]] = []
    for i, line in enumerate(csv_path.read_text().splitlines()):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if "," in line:
            parts = next(csv.reader([line]))
        else:  # space or tab separated list files (MMAction2, UCF101); paths may contain spaces
            parts = line.rsplit(None, 1)
        parts = [p.strip() for p in parts]
        if not rows and parts[0].lower() == path_column:
            continue
        if len(parts) < 2:
            raise ValueError(f"{csv_path}:{i + 1}: expected 'path,label', got {line!r}")
        rows.append((parts[0], parts[1]))
    names = [lab for _, lab in rows]
    numeric = all(re.fullmatch(r"-?\d+", n) for n in names)
    if labels is None:
        labels = [str(i) for i in range(max(int(n) for n in names) + 1)] if numeric and names else sorted(set(names))
    label2id = {name: i for i, name in enumerate(labels)}
    samples = []
    for p, lab in rows:
        if lab in label2id:
            idx = label2id[lab]
        elif numeric and 0 <= int(lab) < len(labels):
            idx = int(lab)
        else:
            raise ValueError(f"{csv_path}: unknown label {lab!r}; known: {list(labels)} (or their indices)")
        full = p if os.path.isabs(p) else str(base / p)
        samples.append(VideoSample(full, idx))
    if not samples:
        raise ValueError(f"list file {str(csv_path)!r} has no rows")
    return samples, list(labels)


def read_ucf101_split(root: str | os.PathLike, annotations_dir: str | os.PathLike, fold: int = 1
                      ) -> tuple[list[VideoSample], list[VideoSample], list[str]]:
    """UCF101's ``classInd.txt`` + ``trainlist0N.txt``/``testlist0N.txt`` into (train, test, labels)."""
    if fold not in (1, 2, 3):
        raise ValueError(f"UCF101 has folds 1, 2 and 3, got {fold}")
    ann = _require_dir(annotations_dir, "annotations_dir")
    video_root = _require_dir(root, "UCF101 root")
    class_ind = ann / "classInd.txt"
    if not class_ind.is_file():
        raise FileNotFoundError(f"{class_ind} missing: annotations_dir must hold UCF101's classInd.txt")
    ordered = []
    for line in class_ind.read_text().splitlines():
        if line.strip():
            idx, name = line.split()
            ordered.append((int(idx), name))
    labels = [name for _, name in sorted(ordered)]
    label2id = {n: i for i, n in enumerate(labels)}

    def load(list_name: str) -> list[VideoSample]:
        f = ann / list_name
        if not f.is_file():
            raise FileNotFoundError(f"{f} missing: UCF101 split files are trainlist0N.txt / testlist0N.txt")
        out = []
        for line in f.read_text().splitlines():
            if not line.strip():
                continue
            rel = line.split()[0]
            cls = rel.split("/")[0]
            if cls not in label2id:
                raise ValueError(f"{f}: {rel!r} is in class {cls!r}, which {class_ind} does not list; "
                                 "use the classInd.txt that belongs to these split files")
            out.append(VideoSample(str(video_root / rel), label2id[cls]))
        return out

    return load(f"trainlist0{fold}.txt"), load(f"testlist0{fold}.txt"), labels


def collect_paths(inputs: str | os.PathLike | Iterable[str | os.PathLike]) -> list[VideoSample]:
    """Files and folders (searched recursively) into unlabeled samples, in the order given."""
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    out: list[VideoSample] = []
    for item in inputs:
        p = Path(item).expanduser()
        if p.is_dir() and not is_video_file(p):
            found = list_videos(p)
            if not found:
                raise ValueError(f"folder {str(p)!r} has no video files")
            out.extend(VideoSample(f) for f in found)
        else:
            out.append(VideoSample(str(p)))  # missing or broken files surface as per-file errors downstream
    return out


def group_of(path: str, pattern: str | None) -> str:
    """The recording group of a file: the regex's first match in the file name, else the file itself."""
    name = os.path.basename(path)
    if pattern:
        m = re.search(pattern, name)
        if m:
            return m.group(0)
    return name


def group_split(samples: Sequence[VideoSample], val_split: float, pattern: str | None = UCF101_GROUP_PATTERN,
                seed: int = 0) -> tuple[list[VideoSample], list[VideoSample]]:
    """Hold out whole groups (per class) for validation so no recording sits on both sides."""
    if not 0.0 < val_split < 1.0:
        raise ValueError(f"val_split must be in (0, 1), got {val_split}")
    by_class: dict[int, dict[str, list[VideoSample]]] = defaultdict(lambda: defaultdict(list))
    for s in samples:
        by_class[s.label][group_of(s.path, pattern)].append(s)
    rng = random.Random(seed)
    train, val = [], []
    n_groups = 0
    single = []
    for label in sorted(by_class):
        groups = by_class[label]
        keys = sorted(groups)
        if len(keys) == 1:
            single.append(label)
        rng.shuffle(keys)
        total = sum(len(v) for v in groups.values())
        want = max(1, round(total * val_split)) if len(keys) > 1 else 0
        taken = 0
        for i, k in enumerate(keys):
            if taken < want and i < len(keys) - 1:  # the last group always stays in training
                val.extend(groups[k])
                taken += len(groups[k])
                n_groups += 1
            else:
                train.extend(groups[k])
    log.info(
        "flashvid: held out %d groups (%d of %d videos) for validation by pattern %r; "
        "no group is on both sides", n_groups, len(val), len(samples), pattern,
    )
    if single and val:
        examples = [next(iter(by_class[k].values()))[0].path for k in single]
        log.warning(
            "flashvid: %d class(es) have a single group and stay out of validation (holding it out would leak "
            "the recording into training): label ids %s, e.g. %s", len(single), single, examples[:3],
        )
    if not val:
        raise ValueError(
            "val_split found no group to hold out: every class has a single group. Pass val_folder=, or a "
            "group_pattern= that matches your file names, or group_pattern=None to split file by file."
        )
    return sorted(train, key=lambda s: s.path), sorted(val, key=lambda s: s.path)
