"""Video decoding: torchcodec where it loads, PyAV everywhere else.

Both readers decode only the frames a clip needs and return them as a uint8 ``(N, C, H, W)`` RGB tensor, so the
rest of the pipeline never sees which one ran. ``decoder="auto"`` picks torchcodec (5-10x faster seeking) when its
FFmpeg libraries load and says so once in the log; ``decoder="torchcodec"`` or ``"pyav"`` forces one.
"""

from __future__ import annotations

import errno
import logging
import os
import re
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Any, Literal, Protocol, Sequence

import torch

log = logging.getLogger(__name__)

DecoderName = Literal["auto", "torchcodec", "pyav"]
DECODERS: tuple[str, ...] = ("auto", "torchcodec", "pyav")


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


class VideoReader(Protocol):
    info: VideoInfo

    def frames_at(self, indices: Sequence[int]) -> torch.Tensor:
        """uint8 RGB frames ``(len(indices), 3, H, W)``; indices past the end repeat the last frame."""

    def close(self) -> None: ...


def _check_file(path: str) -> None:
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


def _reason(e: BaseException, path: str | None = None) -> str:
    """A decoder exception as a one-line reason, without torchcodec's C++ source locations (nor the path)."""
    text = _SOURCE_LOCATION.sub("", str(e)).strip()
    if path:
        text = text.replace(f"input file: {path} ", "input file: ").replace(f": '{path}'", "")
    if "best video stream is unknown" in text:  # torchcodec's words for "there is no video stream"
        return "no video stream (audio-only or not a video)"
    first = text.splitlines()[0] if text else ""
    return f"{type(e).__name__}: {first}".strip().rstrip(":")


def _clamp(indices: Sequence[int], num_frames: int) -> list[int]:
    last = max(num_frames - 1, 0)
    return [min(max(int(i), 0), last) for i in indices]


class TorchCodecReader:
    """torchcodec ``VideoDecoder`` with approximate seeking (no full-file scan at open)."""

    def __init__(self, path: str | os.PathLike, num_threads: int = 1):
        self.path = str(path)
        _check_file(self.path)
        self._num_threads = num_threads
        self._decoder = self._open("approximate")
        meta = self._decoder.metadata
        fps = meta.average_fps
        num_frames = meta.num_frames
        if not meta.num_frames_from_header or not num_frames or not fps:
            # Some containers (webm, some mkv) carry no frame count, and torchcodec's estimate from the
            # millisecond-rounded duration can be one short (29.97 fps WebM): scan once for exact metadata.
            self._decoder = self._open("exact")
            meta = self._decoder.metadata
            fps, num_frames = meta.average_fps, meta.num_frames
        if not num_frames or not fps or not meta.width:
            raise VideoDecodeError(self.path, "no decodable video stream (audio-only or corrupt header)")
        self.info = VideoInfo(int(num_frames), float(fps), int(meta.width), int(meta.height))

    def _open(self, seek_mode: str):
        from torchcodec.decoders import VideoDecoder

        try:
            return VideoDecoder(
                self.path, seek_mode=seek_mode, dimension_order="NCHW", num_ffmpeg_threads=self._num_threads
            )
        except Exception as e:  # torchcodec raises ValueError/RuntimeError with FFmpeg's text
            raise VideoDecodeError(self.path, _reason(e, self.path)) from e

    def frames_at(self, indices: Sequence[int]) -> torch.Tensor:
        wanted = _clamp(indices, self.info.num_frames)
        try:
            return self._decoder.get_frames_at(wanted).data
        except Exception as first:
            # A header frame count can overstate the real one (truncated files): retry against the true count.
            try:
                self._decoder = self._open("exact")
                real = self._decoder.metadata.num_frames or 0
                if real <= 0:
                    raise VideoDecodeError(self.path, "no frames could be decoded")
                self.info = VideoInfo(real, self.info.fps, self.info.width, self.info.height)
                return self._decoder.get_frames_at(_clamp(indices, real)).data
            except VideoDecodeError:
                raise
            except Exception as e:
                raise VideoDecodeError(self.path, _reason(first, self.path)) from e

    def close(self) -> None:
        self._decoder = None


class _BestEffortTimestamp:
    """FFmpeg's ``guess_correct_pts`` (what torchcodec reads): trust pts unless it runs backwards more often than dts.

    Xvid/DivX AVIs with packed B-frames (all of UCF101) decode in display order but carry out-of-order pts; taken
    at face value they made a target frame match a later frame and hand out a neighbouring frame twice.
    """

    def __init__(self) -> None:
        self.last_pts: int | None = None
        self.last_dts: int | None = None
        self.faulty_pts = self.faulty_dts = 0

    def __call__(self, frame) -> int | None:
        pts, dts = frame.pts, frame.dts
        if dts is not None:
            self.faulty_dts += self.last_dts is not None and dts <= self.last_dts
            self.last_dts = dts
        if pts is not None:
            self.faulty_pts += self.last_pts is not None and pts <= self.last_pts
            self.last_pts = pts
        if pts is not None and (self.faulty_pts <= self.faulty_dts or dts is None):
            return pts
        return dts


def _pyav_open_options(version: str) -> dict[str, Any]:
    """``av.open`` options that keep non-UTF-8 metadata (a mislabelled title) from failing the open.

    PyAV <= 18 decodes metadata strictly unless told ``metadata_errors="ignore"``; PyAV 19 removed that argument
    (passing it is a TypeError) and always decodes with ``surrogateescape``, so it needs nothing.
    """
    major = version.split(".")[0]
    return {"metadata_errors": "ignore"} if major.isdigit() and int(major) < 19 else {}


class PyAVReader:
    """PyAV (bundled FFmpeg): seeks to the keyframe before the clip and decodes forward to its last frame."""

    def __init__(self, path: str | os.PathLike, num_threads: int = 1):
        import av

        self.path = str(path)
        _check_file(self.path)
        try:
            self._container = av.open(self.path, **_pyav_open_options(av.__version__))
        except Exception as e:
            raise VideoDecodeError(self.path, _reason(e, self.path)) from e
        if not self._container.streams.video:
            self._container.close()
            raise VideoDecodeError(self.path, "no video stream (audio-only or not a video)")
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO" if num_threads != 1 else "SLICE"
        stream.thread_count = num_threads
        self._stream = stream
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if not rate:
            raise VideoDecodeError(self.path, "stream has no frame rate")
        fps = float(rate)
        tb = stream.time_base or Fraction(1, 1)
        self._time_base = tb
        self._start = stream.start_time or 0
        if stream.duration:
            duration = float(stream.duration * tb)
        elif self._container.duration:
            duration = self._container.duration / 1_000_000
        else:
            duration = 0.0
        num_frames = stream.frames or int(round(duration * fps))
        width, height = stream.codec_context.width, stream.codec_context.height
        if num_frames <= 0 or not width:
            num_frames = self._count_frames()
        if num_frames <= 0:
            self.close()
            raise VideoDecodeError(self.path, "no frames could be decoded")
        self.info = VideoInfo(int(num_frames), fps, int(width), int(height))

    def _count_frames(self) -> int:
        n = 0
        try:
            for _ in self._container.decode(self._stream):
                n += 1
        except Exception:
            pass
        self._container.seek(0)
        return n

    def _index_of(self, frame, clock: "_BestEffortTimestamp") -> int:
        pts = clock(frame)
        if pts is None:
            return -1
        return int(round(float((pts - self._start) * self._time_base) * self.info.fps))

    def frames_at(self, indices: Sequence[int]) -> torch.Tensor:
        wanted = _clamp(indices, self.info.num_frames)
        targets = sorted(set(wanted))
        first_time = targets[0] / self.info.fps
        got: dict[int, torch.Tensor] = {}
        last = None
        try:
            offset = int(first_time / self._time_base) + self._start
            self._container.seek(offset, stream=self._stream, backward=True, any_frame=False)
            pos = 0
            clock = _BestEffortTimestamp()
            for frame in self._container.decode(self._stream):
                idx = self._index_of(frame, clock)
                if idx < targets[pos] and idx >= 0:
                    continue
                rgb = torch.from_numpy(frame.to_ndarray(format="rgb24")).permute(2, 0, 1)
                turns = round((getattr(frame, "rotation", 0) or 0) / 90) % 4
                if turns:  # display-matrix rotation (phone videos), applied as torchcodec does
                    rgb = torch.rot90(rgb, turns, dims=(1, 2))
                last = rgb
                while pos < len(targets) and (idx >= targets[pos] or idx < 0):
                    got[targets[pos]] = rgb
                    pos += 1
                if pos == len(targets):
                    break
        except Exception as e:
            if last is None:
                raise VideoDecodeError(self.path, _reason(e, self.path)) from e
        if last is None:
            raise VideoDecodeError(self.path, "no frames could be decoded")
        for t in targets:  # frames past the real end repeat the last decoded one
            got.setdefault(t, last)
        return torch.stack([got[i] for i in wanted])

    def close(self) -> None:
        container = getattr(self, "_container", None)
        if container is not None:
            container.close()
            self._container = None


@lru_cache(maxsize=1)
def torchcodec_status() -> tuple[bool, str]:
    """Whether torchcodec's FFmpeg libraries load here, and the reason when they do not."""
    try:
        from torchcodec.decoders import VideoDecoder  # noqa: F401  (loads libtorchcodec and FFmpeg)
    except Exception as e:  # ImportError, or RuntimeError/OSError when FFmpeg's shared libraries are missing
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return False, f"{type(e).__name__}: {first_line}"
    return True, "torchcodec loaded with system FFmpeg"


@lru_cache(maxsize=None)
def resolve_decoder(name: str = "auto") -> str:
    """Turn ``auto`` into a concrete decoder, logging the choice and the reason once per process."""
    if name not in DECODERS:
        raise ValueError(f"unknown decoder {name!r}: choose one of {', '.join(DECODERS)}")
    ok, why = torchcodec_status()
    if name == "torchcodec" and not ok:
        raise RuntimeError(
            f"decoder='torchcodec' was asked for but it does not load ({why}). Install system FFmpeg 4-7 "
            "(apt-get install ffmpeg) and the torchcodec release built for your torch, or use decoder='pyav'."
        )
    if name != "auto":
        return name
    if ok:
        log.info("flashvid decoder: torchcodec (approximate seek; %s)", why)
        return "torchcodec"
    log.info("flashvid decoder: pyav (torchcodec unavailable: %s)", why)
    return "pyav"


def open_video(path: str | os.PathLike, decoder: str = "auto", num_threads: int = 1) -> VideoReader:
    """Open ``path`` with the chosen decoder; raises :class:`VideoDecodeError` naming the file on failure."""
    kind = resolve_decoder(decoder)
    if kind == "torchcodec":
        return TorchCodecReader(path, num_threads=num_threads)
    return PyAVReader(path, num_threads=num_threads)


def probe(path: str | os.PathLike, decoder: str = "auto") -> VideoInfo:
    """Stream metadata without decoding frames."""
    reader = open_video(path, decoder)
    try:
        return reader.info
    finally:
        reader.close()
