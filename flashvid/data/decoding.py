"""Video decoding: PyAV for MP4/MOV files, torchcodec for the other containers where it loads, PyAV everywhere else.

Both readers decode only the frames a clip needs and return them as a uint8 ``(N, C, H, W)`` RGB tensor, so the
rest of the pipeline never sees which one ran. ``decoder="auto"`` picks per file, by what measured faster per clip
(docs/benchmarks.md, "Which decoder"): PyAV, with its non-reference skip, for the MP4 family (H.264/HEVC from phones,
cameras, the web and ``flashvid prepare``), torchcodec for the rest (2.6x PyAV on UCF101's MPEG-4 AVIs) when its
FFmpeg libraries load; the choice is logged once. ``decoder="torchcodec"`` or ``"pyav"`` forces one.
"""

from __future__ import annotations

import logging
import os
from fractions import Fraction
from functools import lru_cache
from typing import Any, Callable, Iterator, Literal, Protocol, Sequence, TypeVar

import torch

from .frame_store import FrameStoreReader, is_frame_store

# the PyAV open and the error reason live with VideoDecodeError (torch-free, for prepare's workers); named here too
from .video_file import (  # noqa: F401
    VideoDecodeError,
    VideoInfo,
    _pyav_open_options,
    check_file,
    decode_failure_reason,
    keyframe_gap,
    open_container,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

DecoderName = Literal["auto", "torchcodec", "pyav"]
DECODERS: tuple[str, ...] = ("auto", "torchcodec", "pyav")


class VideoReader(Protocol):
    info: VideoInfo

    def frames_at(self, indices: Sequence[int], short_side: int | None = None) -> torch.Tensor:
        """uint8 RGB frames ``(len(indices), 3, H, W)``; indices past the end repeat the last frame. With
        ``short_side``, frames are scaled while decoding so their short side is that (they never exist at full
        size in memory)."""

    def close(self) -> None: ...


_said: set[tuple[str, str]] = set()


def _note_once(path: str, kind: str, message: str, *args: object, level: int = logging.WARNING) -> None:
    """Log a file's oddity once per process (clips of one file are decoded every epoch)."""
    if (path, kind) not in _said:
        _said.add((path, kind))
        log.log(level, message, *args)


FPS_RANGE = (1.0, 1000.0)  # frame rates outside it are broken headers (0, 1/1000, a 90 kHz time base), not videos
ASSUMED_FPS = 30.0


def _sampling_fps(path: str, header_fps: float, num_frames: int, duration: float) -> float:
    """The frame rate clip sampling uses: the header's when plausible, else frames counted over the duration, else
    30 fps, with a warning naming the file (the clip's frames are still read by index, so they stay right)."""
    lo, hi = FPS_RANGE
    if lo <= header_fps <= hi:
        return header_fps
    counted = num_frames / duration if duration > 0 else 0.0
    fps = counted if lo <= counted <= hi else ASSUMED_FPS
    how = (f"{num_frames} frames over {duration:.4g} s" if lo <= counted <= hi else
           f"{num_frames} frames over {duration:.4g} s is no plausible rate either" if duration > 0 else
           "the duration is unknown too")
    _note_once(path, "fps", "flashvid: %s: its frame-rate header says %.4g fps, which cannot be right; clips are "
               "sampled at %.4g fps (%s). Re-encode at a fixed rate if that is wrong: ffmpeg -i IN -r 30 OUT",
               path, header_fps, fps, how)
    return fps


MAX_CLIP_BYTES = 2**31  # 2 GiB: what one loader worker may hold for one clip (workers x prefetch clips at once)
# Frames are scaled down while decoding when their short side is over this many times the short side the clip
# pipeline resizes to (or when the clip would not fit otherwise): 4K for a 256 short side, never 1080p, whose
# pixels (and results) stay those of the full decode and torchvision's resize.
REDUCE_RATIO = 8
DECODER_FRAMES = 6  # full-size YUV 4:2:0 frames inside the decoder (the frame, its references): measured 3.5-5.4
# for one 8192x8192 clip (PyAV, torchcodec), see scripts/peak_clip_rss.py


def scaled_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """``(width, height)`` with the short side ``short_side``: the rounding of ``transforms.resize_short_side``, so
    a frame decoded at this size needs no further resize there."""
    if height <= width:
        return max(short_side, round(width * short_side / height)), short_side
    return short_side, max(short_side, round(height * short_side / width))


def decode_short_side(info: VideoInfo, num_frames: int, needed: int | None) -> int | None:
    """The short side to decode a clip's frames at, or None for the source's own size.

    ``needed`` is the short side the clip's transform resizes to (None: unknown, frames stay as they are). Frames
    are reduced to it when the source's short side is over :data:`REDUCE_RATIO` times it, or when full-size
    frames would not fit in :data:`MAX_CLIP_BYTES`; a normal-size source decodes as before.
    """
    if not needed or min(info.width, info.height) <= needed:
        return None
    if min(info.width, info.height) > REDUCE_RATIO * needed or clip_bytes(info, num_frames) > MAX_CLIP_BYTES:
        return needed
    return None


def clip_bytes(info: VideoInfo, num_frames: int, short_side: int | None = None) -> int:
    """Memory one clip's decode needs: its RGB frames twice (as decoded, then stacked into the clip) at the
    decoded size, and a few full-size frames inside the decoder (those never shrink)."""
    w, h = scaled_size(info.width, info.height, short_side) if short_side else (info.width, info.height)
    return 2 * num_frames * w * h * 3 + DECODER_FRAMES * info.width * info.height * 3 // 2


def check_clip_size(path: str, info: VideoInfo, num_frames: int, short_side: int | None = None,
                    limit: int = MAX_CLIP_BYTES) -> None:
    """Refuse, before decoding, a clip whose decode would not fit in ``limit`` bytes (frames decoded with their
    short side ``short_side``, or at full size): a few kilobytes of file can declare 8192x8192 frames, and a
    worker decoding 8 of them at full size peaked at 4 GB."""
    need = clip_bytes(info, num_frames, short_side)
    if need > limit:
        at = f" decoded at short side {short_side}" if short_side else ""
        raise VideoDecodeError(
            path, f"frames are {info.width}x{info.height}: a clip of {num_frames} frames{at} needs "
                  f"{need / 2**30:.1f} GB, over the {limit / 2**30:.1f} GB per-clip limit; downscale it "
                  "(ffmpeg -i IN -vf scale=-2:1080 OUT) or remove it")


def _largest(streams: Sequence[tuple[int, int, int, bool]], default: int) -> int:
    """FFmpeg's command-line rule for the video stream: the most pixels (a 16x16 thumbnail stream first in the
    file must not become the video), then the ``default`` one; ``(index, width, height, is_default)`` each."""
    best = max(streams, key=lambda s: (s[1] * s[2], s[3], s[0] == default, -s[0]))
    return best[0]


def _clamp(indices: Sequence[int], num_frames: int) -> list[int]:
    last = max(num_frames - 1, 0)
    return [min(max(int(i), 0), last) for i in indices]


class TorchCodecReader:
    """torchcodec ``VideoDecoder`` with approximate seeking (no full-file scan at open)."""

    def __init__(self, path: str | os.PathLike, num_threads: int = 1):
        self.path = str(path)
        check_file(self.path)
        self._num_threads = num_threads
        self._stream_index: int | None = None
        self._seek_mode = "approximate"
        self._size: tuple[int, int] | None = None  # (height, width) the decoder resizes to; None: full size
        self._decoder = self._open("approximate")
        self._pick_stream()
        meta = self._decoder.metadata
        fps = meta.average_fps
        num_frames = meta.num_frames
        lo, hi = FPS_RANGE
        if not meta.num_frames_from_header or not num_frames or not fps or not lo <= fps <= hi:
            # Some containers (webm, some mkv) carry no frame count, and torchcodec's estimate from the
            # millisecond-rounded duration can be one short (29.97 fps WebM): scan once for exact metadata.
            self._decoder = self._open("exact")
            meta = self._decoder.metadata
            fps, num_frames = meta.average_fps, meta.num_frames
        if not num_frames or not meta.width:
            raise VideoDecodeError(self.path, "no decodable video stream (audio-only or corrupt header)")
        span = (meta.end_stream_seconds or 0) - (meta.begin_stream_seconds or 0)
        fps = _sampling_fps(self.path, float(fps or 0), int(num_frames), float(span or meta.duration_seconds or 0))
        self.info = VideoInfo(int(num_frames), fps, int(meta.width), int(meta.height))

    def _open(self, seek_mode: str):
        from torchcodec.decoders import VideoDecoder
        from torchcodec.transforms import Resize

        self._seek_mode = seek_mode
        try:
            return VideoDecoder(
                self.path, seek_mode=seek_mode, dimension_order="NCHW", num_ffmpeg_threads=self._num_threads,
                stream_index=self._stream_index, transforms=[Resize(self._size)] if self._size else None,
            )
        except Exception as e:  # torchcodec raises ValueError/RuntimeError with FFmpeg's text
            raise VideoDecodeError(self.path, decode_failure_reason(e, self.path)) from e

    def _pick_stream(self) -> None:
        """Several video streams: the largest, as the ffmpeg CLI does (torchcodec's "best" stream is FFmpeg's
        ``av_find_best_stream``, which took a 16x16 thumbnail stream that came first)."""
        try:
            from torchcodec import _core  # the container's streams are not in torchcodec's public API (0.17)

            container = _core.get_container_metadata(self._decoder._decoder)
            videos = [(int(m.stream_index), int(m.width or 0), int(m.height or 0), False) for m in container.streams
                      if getattr(m, "width", None) and (m.num_frames_from_header or 0) != 1]
        except Exception as e:  # noqa: BLE001  (private API moved: keep FFmpeg's choice, say so in debug logs)
            log.debug("flashvid: stream listing unavailable in this torchcodec (%s): using its default stream", e)
            return
        current = int(self._decoder.stream_index)
        if len(videos) < 2:
            return
        chosen = _largest(videos, current)
        if chosen != current:
            self._stream_index = chosen
            self._decoder = self._open("approximate")
            w, h = next((v[1], v[2]) for v in videos if v[0] == chosen)
            _note_once(self.path, "stream", "flashvid: %s has %d video streams: using stream %d (%dx%d), the "
                       "largest, as ffmpeg does", self.path, len(videos), chosen, w, h, level=logging.INFO)

    def _resize_to(self, short_side: int | None) -> None:
        """Reopen the decoder with FFmpeg scaling its frames to ``short_side`` (or back to full size) when that
        changed: torchcodec takes its transforms at construction."""
        size = None
        if short_side and min(self.info.width, self.info.height) > short_side:  # never enlarged
            w, h = scaled_size(self.info.width, self.info.height, short_side)
            size = (h, w)
        if size != self._size:
            self._size = size
            self._decoder = self._open(self._seek_mode)

    def frames_at(self, indices: Sequence[int], short_side: int | None = None) -> torch.Tensor:
        wanted = _clamp(indices, self.info.num_frames)
        self._resize_to(short_side)
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
                raise VideoDecodeError(self.path, decode_failure_reason(first, self.path)) from e

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


def _upright_rgb(frame: Any, reformatter: Any, short_side: int | None = None) -> torch.Tensor:
    """A decoded PyAV frame as uint8 ``(H, W, 3)`` RGB, turned by its display matrix (phone videos) as torchcodec
    turns it; with ``short_side``, scaled to it in the same swscale call (no full-size RGB frame is made).

    ``reformatter`` is one ``VideoReformatter`` per reader: ``frame.to_ndarray(format="rgb24")`` builds a new
    swscale context for every frame, which measured 1.6 ms per 456x256 frame against 0.16 ms with a shared one
    (a third of a prepared clip's decode cost).
    """
    shrink = short_side and min(frame.width, frame.height) > short_side  # never enlarged
    w, h = scaled_size(frame.width, frame.height, short_side) if shrink else (None, None)
    rgb = torch.from_numpy(reformatter.reformat(frame, width=w, height=h, format="rgb24").to_ndarray())
    turns = round((getattr(frame, "rotation", 0) or 0) / 90) % 4
    return torch.rot90(rgb, turns, dims=(0, 1)) if turns else rgb


def _stack_nchw(frames: Sequence[torch.Tensor]) -> torch.Tensor:
    """``(N, 3, H, W)`` as a view of contiguous ``(N, H, W, 3)`` frames, the layout torchcodec returns: stacking
    channel-first views instead copied pixel by pixel (6 ms against 0.4 ms for 16 frames of 456x256)."""
    return torch.stack(list(frames)).permute(0, 3, 1, 2)


class PyAVReader:
    """PyAV (bundled FFmpeg): seeks to the keyframe before the clip and decodes forward to its last frame."""

    def __init__(self, path: str | os.PathLike, num_threads: int = 1, skip_nonref: bool = True):
        self.path = str(path)
        check_file(self.path)
        try:
            self._container = open_container(self.path)
        except Exception as e:
            raise VideoDecodeError(self.path, decode_failure_reason(e, self.path)) from e
        if not self._container.streams.video:
            self._container.close()
            raise VideoDecodeError(self.path, "no video stream (audio-only or not a video)")
        stream = self._pick_stream(self._container.streams.video)
        stream.thread_type = "AUTO" if num_threads != 1 else "SLICE"
        stream.thread_count = num_threads
        self._stream = stream
        from av.video.reformatter import VideoReformatter

        self._rgb = VideoReformatter()  # one swscale context for every frame (see _upright_rgb)
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else 0.0
        # pts -> frame index uses the stream's own rate; without one, frames are counted in decode order
        self._tick = fps
        tb = stream.time_base or Fraction(1, 1)
        self._time_base = tb
        self._tb_num, self._tb_den = tb.numerator, tb.denominator
        self._start = stream.start_time or 0
        if stream.duration:
            duration = float(stream.duration * tb)
        elif self._container.duration:
            duration = self._container.duration / 1_000_000
        else:
            duration = 0.0
        lo, hi = FPS_RANGE
        plausible = lo <= fps <= hi
        num_frames = stream.frames if plausible else 0
        num_frames = num_frames or (int(round(duration * fps)) if plausible else 0)
        width, height = stream.codec_context.width, stream.codec_context.height
        if num_frames <= 0 or not width:
            num_frames = self._count_frames()
        if num_frames <= 0:
            self.close()
            raise VideoDecodeError(self.path, "no frames could be decoded")
        self.info = VideoInfo(int(num_frames), _sampling_fps(self.path, fps, int(num_frames), duration), int(width),
                              int(height))
        # AVI timestamps (packed B-frames) are not trusted enough to decide which packets to skip
        self._skip_ok = skip_nonref and bool(self._tick) and "avi" not in self._container.format.name.split(",")

    def _pick_stream(self, streams: Sequence) -> object:
        """The largest video stream, as the ffmpeg CLI does; cover art (an attached picture) only when alone."""
        import av

        flags = getattr(av.stream, "Disposition", None)
        pic = getattr(flags, "attached_pic", 0)
        default = getattr(flags, "default", 0)
        movies = [st for st in streams if not (int(st.disposition) & int(pic))] or list(streams)
        if len(movies) == 1:
            return movies[0]
        videos = [(i, st.codec_context.width or 0, st.codec_context.height or 0, bool(int(st.disposition) &
                   int(default))) for i, st in enumerate(movies)]
        chosen = movies[_largest(videos, 0)]
        if chosen is not streams[0]:
            _note_once(self.path, "stream", "flashvid: %s has %d video streams: using stream %d (%dx%d), the "
                       "largest, as ffmpeg does", self.path, len(movies), chosen.index,
                       chosen.codec_context.width, chosen.codec_context.height, level=logging.INFO)
        return chosen

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
        if pts is None or not self._tick:
            return -1
        return self._pts_index(pts)

    def _decode_from(self, targets: Sequence[int]) -> Iterator[Any]:
        """Frames from the seek point on. With ``skip_nonref``, a packet whose frame is not one of ``targets``
        (sorted) is decoded with FFmpeg's ``skip_frame=NONREF``: a non-reference frame among them (the B-frames of
        the lead-in from the keyframe, and those between strided clip frames) is not decoded at all, and no other
        frame depends on it, so every frame returned is bit-identical to plain decoding (tested). A packet's frame
        index comes from its pts by the formula a decoded frame's does (:meth:`_pts_index`), so a wanted frame is never
        skipped.

        Measured per 16x4 clip of a ``flashvid prepare`` copy (15 fps: B-frames between the clip's frames): 29-35%
        less decode time than decoding every frame on the GPU machine, 17% less CPU on the dev box; on raw x264
        720p, 5-15% beyond the lead-in skip alone (docs/benchmarks.md).
        """
        ctx = self._stream.codec_context
        if not self._skip_ok:
            yield from self._container.decode(self._stream)
            return
        wanted, last = set(targets), targets[-1]
        skipping = False
        for packet in self._container.demux(self._stream):
            if packet.pts is None:
                skip = False
            else:
                idx = self._pts_index(packet.pts)
                skip = idx < last and idx not in wanted
            if skip != skipping:
                ctx.skip_frame = "NONREF" if skip else "DEFAULT"
                skipping = skip
            yield from packet.decode()
        if skipping:
            ctx.skip_frame = "DEFAULT"

    def _pts_index(self, pts: int) -> int:
        """The frame index a pts shows at: one formula for packets (what to skip) and frames (what to keep).

        ``int / int`` is Python's correctly rounded division, the float of the exact ``(pts - start) * time_base``
        that ``float(Fraction)`` gives, without building Fractions (4% of a copy's clip, called ~70 times a clip).
        """
        return int(round((pts - self._start) * self._tb_num / self._tb_den * self._tick))

    def frames_at(self, indices: Sequence[int], short_side: int | None = None) -> torch.Tensor:
        return _stack_nchw(self._decoded(indices, lambda frame: _upright_rgb(frame, self._rgb, short_side)))

    def decoded_frames(self, indices: Sequence[int]) -> list[Any]:
        """The PyAV frames at ``indices`` as decoded (each once), not converted: a copy's crops are cut from their
        YUV planes (:func:`~flashvid.data.planar.clip_planes`), since the RGB conversion is a fifth of its clip in a
        worker and a fraction of a millisecond per batch on the training GPU (:mod:`.planar`)."""
        return self._decoded(indices, lambda frame: frame)

    def _decoded(self, indices: Sequence[int], convert: Callable[[Any], T]) -> list[T]:
        """``convert`` of each frame at ``indices`` (in their order), each frame decoded and converted once."""
        wanted = _clamp(indices, self.info.num_frames)
        targets = sorted(set(wanted))
        if not self._tick:
            return self._frames_in_order(wanted, convert)
        first_time = targets[0] / self._tick
        got: dict[int, T] = {}
        last = None
        try:
            offset = int(first_time / self._time_base) + self._start
            self._container.seek(offset, stream=self._stream, backward=True, any_frame=False)
            pos = 0
            clock = _BestEffortTimestamp()
            for frame in self._decode_from(targets):
                idx = self._index_of(frame, clock)
                if idx < targets[pos] and idx >= 0:
                    continue
                last = converted = convert(frame)
                while pos < len(targets) and (idx >= targets[pos] or idx < 0):
                    got[targets[pos]] = converted
                    pos += 1
                if pos == len(targets):
                    break
        except Exception as e:
            if last is None:
                raise VideoDecodeError(self.path, decode_failure_reason(e, self.path)) from e
        if last is None:
            raise VideoDecodeError(self.path, "no frames could be decoded")
        for t in targets:  # frames past the real end repeat the last decoded one
            got.setdefault(t, last)
        return [got[i] for i in wanted]

    def _frames_in_order(self, wanted: list[int], convert: Callable[[Any], T]) -> list[T]:
        """No frame rate to place timestamps with: decode from the start and count frames (slow, rare)."""
        targets = set(wanted)
        got: dict[int, T] = {}
        last = None
        try:
            self._container.seek(0)
            for n, frame in enumerate(self._container.decode(self._stream)):
                if n in targets:
                    got[n] = last = convert(frame)
                if n >= max(targets):
                    break
        except Exception as e:
            if last is None:
                raise VideoDecodeError(self.path, decode_failure_reason(e, self.path)) from e
        if last is None:
            raise VideoDecodeError(self.path, "no frames could be decoded")
        return [got.get(i, last) for i in wanted]

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


# Containers whose clips PyAV feeds faster than torchcodec (docs/benchmarks.md, "Which decoder"): on the H200
# machine's 10 loader workers, 272 vs 177 clips/s on `flashvid prepare` copies and 36 vs 26 on raw 720p long-GOP
# H.264; on MPEG-4 AVIs (UCF101) torchcodec is faster per clip (9.7 vs 14.6 ms of CPU here).
PYAV_CONTAINERS = frozenset({".mp4", ".m4v", ".mov"})


@lru_cache(maxsize=None)
def resolve_decoder(name: str = "auto") -> str:
    """Check a decoder name, logging what ``auto`` will do once per process. Returns ``torchcodec``, ``pyav``, or
    ``auto`` (both load: chosen per file by :func:`decoder_for`)."""
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
        log.info("flashvid decoder: pyav for %s files, torchcodec for the others (%s)",
                 "/".join(sorted(PYAV_CONTAINERS)), why)
        return "auto"
    log.info("flashvid decoder: pyav (torchcodec unavailable: %s)", why)
    return "pyav"


def decoder_for(path: str | os.PathLike, decoder: str = "auto") -> str:
    """The reader that opens ``path``: ``decoder`` when it names one, else by container (:data:`PYAV_CONTAINERS`)."""
    kind = resolve_decoder(decoder)
    if kind != "auto":
        return kind
    return "pyav" if os.path.splitext(str(path))[1].lower() in PYAV_CONTAINERS else "torchcodec"


def open_video(path: str | os.PathLike, decoder: str = "auto", num_threads: int = 1,
               skip_nonref: bool = True) -> VideoReader:
    """Open ``path`` with the chosen decoder (a frame store, by its extension, with its own reader); raises
    :class:`VideoDecodeError` naming the file on failure.

    ``skip_nonref`` (PyAV): do not decode the non-reference frames that no clip frame is (the lead-in from the
    keyframe and the frames between strided clip frames); exact, measured in docs/benchmarks.md. On by default;
    off only to measure what it saves.
    """
    if is_frame_store(path):
        return FrameStoreReader(path, num_threads=num_threads)
    if decoder_for(path, decoder) == "torchcodec":
        return TorchCodecReader(path, num_threads=num_threads)
    return PyAVReader(path, num_threads=num_threads, skip_nonref=skip_nonref)


def probe(path: str | os.PathLike, decoder: str = "auto") -> VideoInfo:
    """Stream metadata without decoding frames."""
    reader = open_video(path, decoder)
    try:
        return reader.info
    finally:
        reader.close()


def keyframe_interval(path: str | os.PathLike, max_packets: int = 600) -> int | None:
    """Frames between keyframes (the GOP), estimated from the first ``max_packets`` video packets without decoding.

    A clip seek decodes from the keyframe before the clip, so this is the lead-in a random clip pays (half of it
    on average). Returns the mean gap between the keyframes seen; with one keyframe only, the packets read (a lower
    bound); None when the file cannot be demuxed. A frame store's frames are all keyframes: 1.
    """
    if is_frame_store(path):
        return 1
    try:
        with open_container(path) as container:
            if not container.streams.video:
                return None
            stream = container.streams.video[0]
            keys: list[int] = []
            n = 0
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue
                if packet.is_keyframe:
                    keys.append(n)
                n += 1
                if n >= max_packets:
                    break
    except Exception:  # noqa: BLE001  (an unreadable file: the caller reports it when decoding fails)
        return None
    return keyframe_gap(keys, n)


@lru_cache(maxsize=4096)
def keyframe_indices(path: str) -> tuple[int, ...]:
    """Frame indices of the keyframes of ``path``, from one demux pass (no decoding), cached per process.

    Used by the keyframe-aligned sampler; the pass reads the whole file once per worker (milliseconds for a 10 s
    clip, a second or so for a 100 MB file). A frame store has no lead-in to avoid: ``()``, clips start anywhere.
    """
    if is_frame_store(path):
        return ()
    keys: list[int] = []
    try:
        with open_container(path) as container:
            if not container.streams.video:
                return ()
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            tb, start = stream.time_base, stream.start_time or 0
            n = 0
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue
                if packet.is_keyframe:  # display index from the timestamp when there is one, else decode order
                    use_pts = packet.pts is not None and rate and tb
                    keys.append(int(round(float((packet.pts - start) * tb * rate))) if use_pts else n)
                n += 1
    except Exception:  # noqa: BLE001  (the reader reports an unreadable file; no keyframes means no alignment)
        return tuple(sorted(keys))
    return tuple(sorted(keys))
