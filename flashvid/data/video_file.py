"""What every reader of a clip source shares: the facts sampling needs (:class:`VideoInfo`), the one error a file
that cannot give frames raises (:class:`VideoDecodeError`) and its one-line reason (:func:`decode_failure_reason`),
the checks before opening one (:func:`check_file`), and PyAV's open (:func:`open_container`).

Its own module so that the video decoders (:mod:`.decoding`) and the JPEG frame store (:mod:`.frame_store`) share
them without importing each other, and so that ``prepare``'s worker processes start without importing torch.
"""

from __future__ import annotations

import errno
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    from av.container import InputContainer


class VideoDecodeError(RuntimeError):
    """A file that cannot be decoded into frames; ``path`` and ``reason`` say which and why."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot decode {self.path!r}: {reason}")


@dataclass(frozen=True)
class VideoInfo:
    """What sampling needs to know about a video stream."""

    num_frames: int
    fps: float
    width: int
    height: int

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps


def check_file(path: str) -> None:
    """A one-line :class:`VideoDecodeError` for a path that is missing, a broken link, a folder or unreadable."""
    if not os.path.exists(path):
        if os.path.islink(path):
            try:
                os.stat(path)
            except OSError as e:
                if e.errno == errno.ELOOP:
                    raise VideoDecodeError(
                        path, "symlink loop: the link chain points back to itself; fix or remove it") from None
            raise VideoDecodeError(path, f"broken symlink to {os.readlink(path)!r}: its target is missing")
        raise VideoDecodeError(path, "file not found")
    if os.path.isdir(path):
        raise VideoDecodeError(path, "is a directory, not a video file")
    if not os.access(path, os.R_OK):
        raise VideoDecodeError(path, "permission denied: make the file readable (chmod +r)")
    if os.path.getsize(path) == 0:
        raise VideoDecodeError(path, "empty file (0 bytes): re-download or remove it")


_SOURCE_LOCATION = re.compile(r"\w+, /\S+\.(?:cpp|h|c):\d+, ")


def decode_failure_reason(e: BaseException, path: str | None = None) -> str:
    """A decoder exception as a one-line reason, without torchcodec's C++ source locations (nor the path)."""
    text = _SOURCE_LOCATION.sub("", str(e)).strip()
    if path:
        text = text.replace(f"input file: {path} ", "input file: ").replace(f": '{path}'", "")
    if "best video stream is unknown" in text:  # torchcodec's words for "there is no video stream"
        return "no video stream (audio-only or not a video)"
    first = text.splitlines()[0] if text else ""
    return f"{type(e).__name__}: {first}".strip().rstrip(":")


def _pyav_open_options(version: str) -> dict[str, Any]:
    """``av.open`` options that keep non-UTF-8 metadata (a mislabelled title) from failing the open.

    PyAV <= 18 decodes metadata strictly unless told ``metadata_errors="ignore"``; PyAV 19 removed that argument
    (passing it is a TypeError) and always decodes with ``surrogateescape``, so it needs nothing.
    """
    major = version.split(".")[0]
    return {"metadata_errors": "ignore"} if major.isdigit() and int(major) < 19 else {}


def open_container(path: str | os.PathLike) -> InputContainer:
    """Open ``path`` for reading with PyAV; every read-mode ``av.open`` in flashvid goes through here.

    A non-UTF-8 tag (a Latin-1 title) fails a plain open on PyAV <= 18, and PyAV 19 rejects the argument that
    prevents it (see :func:`_pyav_open_options`): one place to get that right for every installed version.
    """
    import av

    return av.open(str(path), **_pyav_open_options(av.__version__))


def keyframe_gap(keyframes: Sequence[int], packets: int) -> int | None:
    """Frames between keyframes (the GOP) from the packet indices of the keyframes among ``packets`` demuxed: the
    mean gap; with one keyframe only, the packets read (a lower bound); None when nothing was read."""
    if len(keyframes) >= 2:
        return max(1, round((keyframes[-1] - keyframes[0]) / (len(keyframes) - 1)))
    return packets or None
