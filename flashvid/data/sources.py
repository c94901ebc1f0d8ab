"""Where videos and labels come from: class folders, CSV/list files, UCF101 split files, or bare paths.

Every source ends as a list of :class:`VideoSample` plus the sorted class names. Labels are indices into those
names; predict-only samples carry ``label = -1``.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import random
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

log = logging.getLogger(__name__)

# flashvid's JPEG frame stores (`flashvid prepare prepare.format=frames`, .frame_store): one file per video, listed
# and read as one (defined here so that this module imports nothing: tests load it alone)
FRAME_STORE_SUFFIX = ".frames"
VIDEO_EXTENSIONS: frozenset[str] = frozenset({".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg",
                                               ".3gp", ".3g2", ".flv", ".wmv", ".asf", FRAME_STORE_SUFFIX})
# MPEG-TS (broadcast, AVCHD camcorders): both readers' seeks land on the wrong frames in it (measured: with B-frames,
# frame 0 comes back as frame 10, the last frames not at all), so training does not read it; `flashvid prepare`,
# which decodes each file from start to end, converts it to MP4
SEQUENTIAL_ONLY_EXTENSIONS: frozenset[str] = frozenset({".ts", ".mts", ".m2ts", ".m2t"})
UCF101_GROUP_PATTERN = r"_g(\d+)_"


LABEL_SEPARATOR = ";"  # several labels in one list-file cell: path,label1;label2 (multi-label data)


@dataclass(frozen=True)
class VideoSample:
    """A video file and its class index (-1: unknown), or a tuple of class indices for multi-label data."""

    path: str
    label: int | tuple[int, ...] = -1

    @property
    def name(self) -> str:
        return os.path.basename(self.path)


def is_video_file(path: str | os.PathLike, extensions: frozenset[str] = VIDEO_EXTENSIONS) -> bool:
    p = Path(path)
    return p.suffix.lower() in extensions and not p.name.startswith(".")


def note_skipped(folder: str | os.PathLike, skipped: Sequence[str], notes: list[str] | None = None) -> None:
    """One warning line per kind for the files of ``folder`` that are not listed (also appended to ``notes``):
    how many, and a few example names. MPEG-TS gets its own line: `flashvid prepare` converts it."""
    ts = [p for p in skipped if Path(p).suffix.lower() in SEQUENTIAL_ONLY_EXTENSIONS]
    other = [p for p in skipped if p not in set(ts)]
    messages = []
    if ts:
        messages.append(
            f"{folder}: skipped {len(ts)} MPEG-TS file(s) ({_examples(ts, folder)}): the decoders cannot seek in them "
            "to exact frames; convert them once with `flashvid prepare <these data options> output=DIR` (it reads "
            "them start to end and writes MP4) and train on DIR")
    if other:
        messages.append(
            f"{folder}: skipped {len(other)} file(s) that are not videos ({_examples(other, folder)}); videos are "
            f"{' '.join(sorted(VIDEO_EXTENSIONS))}: rename a video whose extension is wrong")
    for message in messages:
        log.warning("flashvid: %s", message)
        if notes is not None:
            notes.append(message)


def _examples(paths: Sequence[str], folder: str | os.PathLike, n: int = 3) -> str:
    shown = ", ".join(os.path.relpath(p, folder) for p in paths[:n])
    return f"e.g. {shown}" + (f" and {len(paths) - n} more" if len(paths) > n else "")


def _require_dir(folder: str | os.PathLike, what: str) -> Path:
    root = Path(folder).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"{what} {str(root)!r} does not exist: check the path (data.root / *_folder)")
    if not root.is_dir():
        raise NotADirectoryError(f"{what} {str(root)!r} is not a directory of class sub-folders")
    return root


def is_inside(path: str, parent: str) -> bool:
    """Whether real path ``path`` is ``parent`` or below it."""
    return path == parent or path.startswith(parent.rstrip(os.sep) + os.sep)


def list_videos(folder: str | os.PathLike, within: str | os.PathLike | None = None,
                notes: list[str] | None = None, skipped: list[str] | None = None,
                extensions: frozenset[str] = VIDEO_EXTENSIONS) -> list[str]:
    """Video files under ``folder`` (recursively, sorted), skipping hidden entries and non-videos (files with
    another extension are appended to ``skipped`` when given, for :func:`note_skipped`).

    A directory named like a video (``x.mp4/``) is listed too, so that it is reported as unreadable rather
    than silently dropped. Symlinks are followed with care (``os.walk(followlinks=True)`` multiplied files and
    hung on ``ln -s . a``): a link to a file counts it once (a file reached twice, by its path and through a link,
    is listed once); a link to a directory is followed only when that directory lies outside ``folder``, is not an
    ancestor of it, is not inside ``within`` (the split root: another class's folder) and was not walked before.
    Each link skipped for those reasons is logged with the reason (and appended to ``notes`` when given).
    """
    top = os.path.realpath(folder)
    fence = os.path.realpath(within) if within is not None else None
    walked: set[str] = set()
    out: list[str] = []

    def skip(link: str, target: str, why: str) -> None:
        message = (f"not following symlink {link} -> {target}: {why}; the videos there are not listed twice "
                   "(replace the link with the files, or remove it)")
        log.warning("flashvid: %s", message)
        if notes is not None:
            notes.append(message)

    def walk(path: str, real: str) -> None:
        walked.add(real)
        try:
            entries = sorted(os.scandir(path), key=lambda e: e.name)
        except OSError as e:
            log.warning("flashvid: cannot list %s (%s): its videos are skipped", path, e.strerror or e)
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                is_dir = entry.is_dir(follow_symlinks=True)
            except OSError:
                is_dir = False
            if not is_dir:
                if is_video_file(entry.name, extensions):  # files, broken links and loops (reported at decode time)
                    out.append(entry.path)
                elif skipped is not None:
                    skipped.append(entry.path)
                continue
            if is_video_file(entry.name, extensions):
                out.append(entry.path)  # a directory named like a video: reported as unreadable
                continue
            target = os.path.realpath(entry.path)
            if entry.is_symlink():
                if is_inside(target, top) or is_inside(top, target):
                    skip(entry.path, target, "it points back into this folder or above it (a loop)")
                    continue
                if fence is not None and is_inside(target, fence):
                    skip(entry.path, target, "it points into another class folder of this split")
                    continue
            if target in walked:
                if entry.is_symlink():
                    skip(entry.path, target, "that folder was listed already")
                continue
            walk(entry.path, target)

    walk(str(folder), top)
    # one entry per real file: a file and a link to it (or two links) count once; the plain path wins
    first: dict[str, str] = {}
    for path in sorted(out):
        if not os.path.isfile(path):
            continue
        real = os.path.realpath(path)
        kept = first.get(real)
        if kept is None or (os.path.islink(kept) and not os.path.islink(path)):
            first[real] = path
    keep = set(first.values())
    return sorted(p for p in out if p in keep or not os.path.isfile(p))


def scan_class_folders(folder: str | os.PathLike, labels: Sequence[str] | None = None,
                       what: str = "folder", notes: list[str] | None = None,
                       extensions: frozenset[str] = VIDEO_EXTENSIONS) -> tuple[list[VideoSample], list[str]]:
    """``folder/<class>/**/<video>`` into samples; ``labels`` fixes the class list (e.g. the train split's).
    Symlinks that were not followed, and files of the class folders that were skipped (not videos, or MPEG-TS),
    are logged and appended to ``notes`` (see :func:`list_videos`, :func:`note_skipped`)."""
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
    skipped: list[str] = []
    samples = [VideoSample(p, label2id[c]) for c in classes
               for p in list_videos(root / c, within=root, notes=notes, skipped=skipped, extensions=extensions)]
    note_skipped(root, skipped, notes)
    if not samples:
        raise ValueError(
            f"{what} {str(root)!r} has no videos: expected <class>/<video> with extensions "
            f"{', '.join(sorted(VIDEO_EXTENSIONS))}"
        )
    return samples, list(labels)


_PATH_HEADERS = {"path", "video", "file", "filename", "video_path", "filepath"}
_LABEL_HEADERS = {"label", "class", "category", "label_id", "class_id", "target"}


def _csv_fields(line: str) -> list[str]:
    if "," in line:
        parts = next(csv.reader([line]))
    else:  # space or tab separated list files (MMAction2, UCF101); paths may contain spaces
        parts = line.rsplit(None, 1)
    return [p.strip() for p in parts]


def read_csv(path: str | os.PathLike, root: str | os.PathLike | None = None, labels: Sequence[str] | None = None,
             path_column: str = "path", label_column: str = "label", notes: list[str] | None = None
             ) -> tuple[list[VideoSample], list[str]]:
    """``path,label`` rows (header optional; comma, space or tab separated). Labels are names or indices.

    Read as ``utf-8-sig``, so the byte-order mark Excel and PowerShell write does not turn the header into a
    sample. A first row whose fields name the columns (``path_column``/``label_column`` or common names such as
    ``video``, ``class``; any case) is a header, and its column order is used. A row without a path or label, or
    a video listed twice with different labels, is an error naming the line; exact duplicate rows count once, with
    a warning (also appended to ``notes``).
    """
    csv_path = Path(path)
    if not csv_path.is_file():
        raise FileNotFoundError(f"list file {str(csv_path)!r} does not exist")
    if is_kinetics_csv(csv_path):
        return read_kinetics_csv(csv_path, root, labels)
    base = Path(root) if root is not None else csv_path.parent
    try:
        text = csv_path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise ValueError(f"list file {str(csv_path)!r} is not UTF-8 text ({e.reason} at byte {e.start}): save it "
                         "as UTF-8") from None
    rows: list[tuple[str, str, int]] = []  # path, label, line number
    cols = (0, 1)
    first = True
    for i, line in enumerate(text.splitlines()):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = _csv_fields(line)
        if first:
            first = False
            lower = [p.lower() for p in parts]
            path_names = _PATH_HEADERS | {path_column.lower()}
            label_names = _LABEL_HEADERS | {label_column.lower()}
            if any(x in path_names for x in lower) and any(x in label_names for x in lower):
                cols = (next(j for j, x in enumerate(lower) if x in path_names),
                        next(j for j, x in enumerate(lower) if x in label_names))
                continue
            if len(parts) >= 2 and (lower[0] in path_names or lower[1] in label_names):
                continue
        if len(parts) <= max(cols):
            raise ValueError(f"{csv_path}:{i + 1}: expected 'path,label', got {line!r}")
        p, lab = parts[cols[0]], parts[cols[1]]
        if not p or not lab:
            raise ValueError(f"{csv_path}:{i + 1}: empty {'path' if not p else 'label'} in {line.strip()!r}: "
                             "every row needs a video and its class (path,label)")
        rows.append((p, lab, i + 1))
    multi = any(LABEL_SEPARATOR in lab for _, lab, _ in rows)
    pairs = _unique_rows(csv_path, base, rows, multi, notes)
    if multi:
        return read_multi_label_rows(csv_path, base, pairs, labels)
    names = [lab for _, lab in pairs]
    numeric = all(re.fullmatch(r"-?\d+", n) for n in names)
    if labels is None:
        labels = [str(i) for i in range(max(int(n) for n in names) + 1)] if numeric and names else sorted(set(names))
    label2id = {name: i for i, name in enumerate(labels)}
    samples = []
    for p, lab in pairs:
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


def _unique_rows(csv_path: Path, base: Path, rows: Sequence[tuple[str, str, int]], multi: bool,
                 notes: list[str] | None) -> list[tuple[str, str]]:
    """``(path, label)`` rows with exact duplicates dropped (warned); one video under two labels is refused: training
    would be told both answers for one input."""
    def key(lab: str) -> str:  # a multi-label cell is a set of classes: "a;b" = "b; a"
        return LABEL_SEPARATOR.join(sorted({x.strip() for x in lab.split(LABEL_SEPARATOR) if x.strip()})) \
            if multi else lab

    seen: dict[str, tuple[str, int]] = {}  # normalised path -> (label, line)
    out: list[tuple[str, str]] = []
    dropped: list[tuple[str, int, int]] = []
    for p, lab, line in rows:
        full = os.path.normpath(p if os.path.isabs(p) else str(base / p))
        first = seen.get(full)
        if first is None:
            seen[full] = (key(lab), line)
            out.append((p, lab))
        elif first[0] == key(lab):
            dropped.append((p, first[1], line))
        else:
            both = LABEL_SEPARATOR.join(sorted({*first[0].split(LABEL_SEPARATOR), *key(lab).split(LABEL_SEPARATOR)}))
            raise ValueError(f"{csv_path}:{line}: {p!r} is listed under two labels, {first[0]!r} (line {first[1]}) "
                             f"and {key(lab)!r}: keep the one right row, or for several classes per video write one "
                             f"row '{p},{both}' and train with model.multi_label=true")
    if dropped:
        p, a, b = dropped[0]
        message = (f"{csv_path}: {len(dropped)} duplicate row(s) (same video, same label) counted once, e.g. {p!r} "
                   f"(lines {a} and {b})")
        log.warning("flashvid: %s", message)
        if notes is not None:
            notes.append(message)
    return out


def outside_root(samples: Sequence[VideoSample], root: str | os.PathLike) -> list[str]:
    """Listed paths that resolve (``..``, absolute paths, symlinks) outside ``root``."""
    top = os.path.realpath(root)
    return [s.path for s in samples if not is_inside(os.path.realpath(s.path), top)]


def check_outside_root(samples: Sequence[VideoSample], root: str | os.PathLike | None, source: str,
                       allow: bool = True) -> str | None:
    """Warn (or, with ``allow=False``, refuse) when a list file's paths escape ``root``; the warning text or None.

    A list file is data from elsewhere: ``../../etc/x.mp4`` or ``/home/other/x.mp4`` rows read files the user did
    not mean to point at. Without a root nothing is checked (absolute paths are then the normal case).
    """
    if root is None:
        return None
    escaped = outside_root(samples, root)
    if not escaped:
        return None
    shown = ", ".join(escaped[:3]) + (f" and {len(escaped) - 3} more" if len(escaped) > 3 else "")
    if not allow:
        raise ValueError(f"{source}: {len(escaped)} listed path(s) resolve outside data.root {str(root)!r}: "
                         f"{shown}. Fix the list, or set data.allow_outside_root=true to accept them")
    message = (f"{source}: {len(escaped)} listed path(s) resolve outside data.root {str(root)!r}: {shown} "
               "(data.allow_outside_root=false refuses them)")
    log.warning("flashvid: %s", message)
    return message


def read_multi_label_rows(csv_path: Path, base: Path, rows: Sequence[tuple[str, str]],
                          labels: Sequence[str] | None = None) -> tuple[list[VideoSample], list[str]]:
    """Rows whose label cells hold ``;``-separated class names: samples labelled with sorted index tuples."""
    cells = [(p, [x.strip() for x in lab.split(LABEL_SEPARATOR) if x.strip()]) for p, lab in rows]
    empty = [p for p, names in cells if not names]
    if empty:
        raise ValueError(f"{csv_path}: rows without a label, e.g. {empty[0]!r}: give at least one class per row")
    if labels is None:
        labels = sorted({n for _, names in cells for n in names})
    label2id = {name: i for i, name in enumerate(labels)}
    samples = []
    for p, names in cells:
        unknown = [n for n in names if n not in label2id]
        if unknown:
            raise ValueError(f"{csv_path}: unknown label(s) {unknown} for {p!r}; known: {list(labels)}")
        full = p if os.path.isabs(p) else str(base / p)
        samples.append(VideoSample(full, tuple(sorted({label2id[n] for n in names}))))
    return samples, list(labels)


def label_name(label: int | tuple[int, ...], labels: Sequence[str]) -> str | None:
    """A sample's class name (multi-label: the names joined by ``;``, as in the list files); None if unknown."""
    if isinstance(label, tuple):
        return LABEL_SEPARATOR.join(labels[i] for i in label)
    return labels[label] if 0 <= label < len(labels) else None


def as_multi_label(samples: Sequence[VideoSample]) -> list[VideoSample]:
    """Single-label samples as one-class tuples (a split of a multi-label dataset with one class per row)."""
    return [s if isinstance(s.label, tuple) or s.label < 0 else VideoSample(s.path, (s.label,)) for s in samples]


KINETICS_COLUMNS = ("youtube_id", "time_start", "time_end")
KINETICS_NAME = "{youtube_id}_{start:06d}_{end:06d}"


def is_kinetics_csv(path: str | os.PathLike) -> bool:
    """The official Kinetics annotation header: ``label,youtube_id,time_start,time_end,split[,is_cc]``."""
    with open(path, encoding="utf-8-sig", errors="replace") as fh:
        first = next((line for line in fh if line.strip()), "")
    columns = {c.strip().lower() for c in first.split(",")}
    return set(KINETICS_COLUMNS) <= columns


def read_kinetics_csv(path: str | os.PathLike, root: str | os.PathLike | None = None,
                      labels: Sequence[str] | None = None) -> tuple[list[VideoSample], list[str]]:
    """The official Kinetics CSV: each row names a clip ``{youtube_id}_{start:06d}_{end:06d}.<ext>``.

    The downloaders place that file in one of these layouts under ``root`` (default: the CSV's folder), all
    accepted: ``<label>/`` (ActivityNet's and MMAction2's download scripts; spaces in the label kept, or turned
    into underscores as MMAction2's rename step does), ``<split>/<label>/``, ``<split>/`` (the cvdfoundation
    kinetics-dataset archives) or ``root`` itself. A row whose clip is found nowhere is skipped with a warning
    naming how many and examples (Kinetics downloads always miss some videos); a CSV with no clip found, or
    without a ``label`` column (the test set's), is an error.
    """
    csv_path = Path(path)
    base = Path(root) if root is not None else csv_path.parent
    with open(csv_path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        fields = [f.strip().lower() for f in reader.fieldnames or []]
        reader.fieldnames = fields
        if "label" not in fields:
            raise ValueError(f"{csv_path}: a Kinetics CSV without a 'label' column (the test set's, whose labels "
                             "are not public) cannot train or evaluate; use the train/validate CSVs, or classify "
                             "the files with `flashvid predict`")
        rows = [{k: (v or "").strip() for k, v in row.items() if k} for row in reader]
    if not rows:
        raise ValueError(f"Kinetics list {str(csv_path)!r} has no rows")
    on_disk = _index_clips(_require_dir(base, "Kinetics root"))
    names = [r["label"] for r in rows]
    if labels is None:
        labels = sorted(set(names))
    label2id = {name: i for i, name in enumerate(labels)}
    samples, missing = [], []
    for i, r in enumerate(rows, start=2):
        try:
            stem = KINETICS_NAME.format(youtube_id=r["youtube_id"], start=int(float(r["time_start"])),
                                        end=int(float(r["time_end"])))
        except ValueError:
            raise ValueError(f"{csv_path}:{i}: time_start/time_end must be seconds, got {r['time_start']!r}, "
                             f"{r['time_end']!r}") from None
        if r["label"] not in label2id:
            raise ValueError(f"{csv_path}:{i}: unknown label {r['label']!r}; known: {list(labels)[:20]}...")
        found = _pick_clip(on_disk.get(stem, []), base, r["label"], r.get("split", ""))
        if found is None:
            missing.append(stem)
            continue
        if isinstance(found, list):
            raise ValueError(f"{csv_path}:{i}: clip {stem} is in several places under {base}: {found[:3]}; "
                             "keep one copy")
        samples.append(VideoSample(found, label2id[r["label"]]))
    if not samples:
        raise FileNotFoundError(
            f"{csv_path}: none of its {len(rows)} clips was found under {str(base)!r}. Expected files named "
            f"{KINETICS_NAME}.mp4 (e.g. {missing[0]}.mp4) in <root>/<label>/, <root>/<split>/<label>/, "
            "<root>/<split>/ or <root>/: set data.root to the folder the downloader wrote")
    if missing:
        log.warning("flashvid: %d of %d clips of %s are not under %s (not downloaded?) and are skipped, e.g. %s",
                    len(missing), len(rows), csv_path, base, ", ".join(missing[:3]))
    return samples, list(labels)


def _index_clips(base: Path) -> dict[str, list[str]]:
    """Video files under ``base`` by file stem (one walk, instead of probing each layout per row)."""
    out: dict[str, list[str]] = defaultdict(list)
    for p in list_videos(base):
        out[Path(p).stem].append(p)
    return out


def _pick_clip(paths: list[str], base: Path, label: str, split: str) -> str | list[str] | None:
    """The one file among ``paths`` in an accepted layout; several equally good ones come back as a list."""
    folders = {label, label.replace(" ", "_"), re.sub(r"[^\w]+", "_", label).strip("_")}
    good = []
    for p in paths:
        parts = Path(os.path.relpath(p, base)).parts[:-1]
        if parts in ((), (split,)) or (len(parts) == 1 and parts[0] in folders) or \
                (len(parts) == 2 and parts[0] == split and parts[1] in folders):
            good.append(p)
    if not good:
        return None
    return good[0] if len(good) == 1 else good


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
            skipped: list[str] = []
            found = list_videos(p, skipped=skipped)
            note_skipped(p, skipped)
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
    too_big: list[tuple[int, int, int]] = []
    for label in sorted(by_class):
        groups = by_class[label]
        keys = sorted(groups)
        if len(keys) == 1:
            single.append(label)
        rng.shuffle(keys)
        total = sum(len(v) for v in groups.values())
        want = max(1, round(total * val_split)) if len(keys) > 1 else 0
        # whole groups overshoot: with few large groups per class the first one taken could hold half the class.
        # A group is held out only while the class's validation share stays within twice what was asked.
        cap = max(want, math.ceil(2 * total * val_split))
        taken = kept = 0
        for i, k in enumerate(keys):
            size = len(groups[k])
            last_in_train = kept == 0 and i == len(keys) - 1  # at least one group always stays in training
            if taken < want and taken + size <= cap and not last_in_train:
                val.extend(groups[k])
                taken += size
                n_groups += 1
            else:
                train.extend(groups[k])
                kept += 1
        if want and not taken:
            too_big.append((label, min(len(g) for g in groups.values()), total))
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
    if too_big and not val and pattern is not None:
        log.warning(
            "flashvid: val_split=%s: every recording group is larger than twice the asked share of its class "
            "(label id, smallest group, class size: %s), so whole groups cannot be held out without taking far "
            "more than asked; splitting file by file instead: clips of one recording may sit on both sides and "
            "flatter validation. Pass val_folder= for a clean validation set", val_split, too_big[:5])
        return group_split(samples, val_split, None, seed)
    if too_big:
        log.warning(
            "flashvid: val_split=%s holds out whole recording groups, and in %d class(es) every group is larger than "
            "twice the asked share (label id, smallest group, class size: %s): those classes stay out of "
            "validation. Pass val_folder= for a real validation set, or group_pattern=None to split file by file "
            "(clips of one recording may then sit on both sides)", val_split, len(too_big), too_big[:5])
    if not val:
        raise ValueError(
            "val_split found no group to hold out: every class has a single group. Pass val_folder=, or a "
            "group_pattern= that matches your file names, or group_pattern=None to split file by file."
        )
    return sorted(train, key=lambda s: s.path), sorted(val, key=lambda s: s.path)
