"""The JPEG frame store: every frame a sampler can read, as JPEG, in ONE file per video with an offset index.

A video copy from ``flashvid prepare`` still costs a clip read its decode lead-in and an H.264 decode on the CPU.
A store (``prepare.format=frames``) holds the same frames (the copy's capped frame rate and short side) each as its
own JPEG, so a clip is one open and one small read per frame with nothing decoded that the clip does not show, and
the JPEGs can be decoded where it is cheapest: batched in the loader worker (libjpeg-turbo through
``torchvision.io.decode_jpeg``) or batched on the GPU (nvJPEG, :mod:`.device_decode`).

One file per video, not a folder of thousands of JPEGs (MMAction2's rawframes): a dataset stays a few files per
class to copy, list, hash and shard, and a clip read opens one file.

Layout (little-endian)::

    0   8 bytes  MAGIC b"FVFRAMES"
    8   u32      format version (1)
    12  u32      header length H
    16  u64      index offset X
    24  H bytes  header, UTF-8 JSON: num_frames, fps, fps_fraction, width, height, quality, source (what it came from)
    ..           the JPEGs, back to back, in frame order
    X   u64 x (num_frames + 1)   the offset of each JPEG, then X itself (the end of the last one)

The file ends exactly at ``X + 8 * (num_frames + 1)``: a truncated copy is refused at open. Written by hand rather
than as a ZIP of stored members (one per frame): Python's zipfile parses the whole central directory at every open,
and clip reads open the file once per clip: opening a 10-minute 15 fps store (9,000 frames) and reading a 16-frame
clip took 265 ms as a ZIP against 0.47 ms here (dev box, 2 busy cores). HDF5 or LMDB would add a dependency and a C
library for the same few lines.
"""

from __future__ import annotations

import io
import json
import os
import struct
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from .sources import FRAME_STORE_SUFFIX
from .video_file import VideoDecodeError, VideoInfo, check_file

if TYPE_CHECKING:
    import numpy as np
    import torch

__all__ = ["FRAME_STORE_SUFFIX", "FrameStoreReader", "FrameStoreWriter", "decode_jpegs", "encode_jpegs",
           "is_frame_store", "split_jpegs", "stack_frames", "write_frame_store"]
MAGIC = b"FVFRAMES"
VERSION = 1
_PREFIX = struct.Struct("<8sIIQ")  # magic, version, header length, index offset
# JPEG quality of the stores `flashvid prepare` writes, measured (scripts/bench.py frame-store --qualities, 8 real
# Kinetics clips at 256 px, 15 fps; PSNR against the uncompressed frames both copies are made from): the video copy
# (crf 22) 38.5 dB at 4.3 MB/min; JPEG q75 38.9 dB at 11.5 MB/min, q85 40.8 at 15.0, q90 42.2 at 18.6, q95 44.2 at
# 26.6. 75 is the least bytes that lose no more than the video copy does.
DEFAULT_QUALITY = 75
_SOI, _EOI = b"\xff\xd8", b"\xff\xd9"


def is_frame_store(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a frame store (by its extension, as videos are recognised by theirs)."""
    return str(path).lower().endswith(FRAME_STORE_SUFFIX)


class FrameStoreWriter:
    """Writes a store to ``path`` frame by frame (``add`` JPEG bytes, then ``close``); the caller renames a
    temporary ``path`` into place, as ``prepare`` does for its other outputs."""

    def __init__(self, path: str | os.PathLike, fps: float | Fraction, width: int, height: int, quality: int,
                 source: Mapping[str, Any] | None = None):
        self.path = str(path)
        rate = Fraction(fps).limit_denominator(1001)
        self._header = {"fps": float(rate), "fps_fraction": f"{rate.numerator}/{rate.denominator}", "width": width,
                        "height": height, "quality": quality, "source": dict(source or {})}
        self._file = open(self.path, "wb")
        self._offsets: list[int] = []
        # the header goes first but holds num_frames, known only at the end: the prefix is filled in by close(),
        # and the JSON gets room for a 20-digit frame count, rewritten in place padded with spaces (valid JSON)
        self._header_len = len(json.dumps({**self._header, "num_frames": 10**19}).encode())
        self._file.write(b"\0" * _PREFIX.size + b" " * self._header_len)

    def add(self, jpeg: bytes | bytearray | memoryview) -> None:
        self._offsets.append(self._file.tell())
        self._file.write(jpeg)

    def close(self) -> int:
        """Write the index and the header; returns the number of frames."""
        end = self._file.tell()
        self._file.write(struct.pack(f"<{len(self._offsets) + 1}Q", *self._offsets, end))
        header = json.dumps({**self._header, "num_frames": len(self._offsets)}).encode()
        self._file.seek(0)
        self._file.write(_PREFIX.pack(MAGIC, VERSION, self._header_len, end))
        self._file.write(header.ljust(self._header_len, b" "))
        self._file.close()
        return len(self._offsets)

    def abort(self) -> None:
        self._file.close()


def encode_jpegs(frames: Sequence["np.ndarray"], quality: int = DEFAULT_QUALITY) -> list[bytes]:
    """uint8 RGB ``(H, W, 3)`` frames as JPEG bytes, 4:2:0 chroma as nvJPEG reads.

    Pillow's libjpeg-turbo: the same bytes as torchvision's ``encode_jpeg`` at the same quality (checked on 456x256
    frames), in 0.85 ms a frame against its 1.48 ms (dev box, one thread), and without torch, so ``prepare``'s
    workers do not import it."""
    from PIL import Image

    out = []
    for frame in frames:
        buffer = io.BytesIO()
        Image.fromarray(frame).save(buffer, format="JPEG", quality=quality, subsampling="4:2:0")
        out.append(buffer.getvalue())
    return out


def write_frame_store(path: str | os.PathLike, frames: Iterable["np.ndarray"], fps: float | Fraction,
                      quality: int = DEFAULT_QUALITY, source: Mapping[str, Any] | None = None) -> int:
    """Write ``frames`` (uint8 RGB ``(H, W, 3)`` each, one size) as a store at ``path``; returns the frame count."""
    writer: FrameStoreWriter | None = None
    try:
        for frame in frames:
            if writer is None:
                writer = FrameStoreWriter(path, fps, int(frame.shape[1]), int(frame.shape[0]), quality, source)
            writer.add(encode_jpegs([frame], quality)[0])
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    if writer is None:
        raise ValueError(f"{path}: no frames to store")
    return writer.close()


class FrameStoreReader:
    """A store opened for clip reads: ``info`` as the video readers give it, ``jpegs_at`` (the encoded frames, for
    decoding elsewhere) and ``frames_at`` (decoded on this CPU). Every problem is a :class:`VideoDecodeError`.
    :meth:`from_bytes` reads a store held in memory (a streaming reader's sample, docs/streaming.md) the same way."""

    def __init__(self, path: str | os.PathLike, num_threads: int = 1):
        self.path = str(path)
        self._data: memoryview | None = None
        check_file(self.path)
        self._file = open(self.path, "rb", buffering=0)
        self._size = os.fstat(self._file.fileno()).st_size
        self._open()

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview, name: str = "<bytes>") -> "FrameStoreReader":
        """A store's whole file content, already in memory; ``name`` is what errors call it."""
        reader = cls.__new__(cls)
        reader.path, reader._file, reader._data = name, None, memoryview(data).cast("B")
        reader._size = len(reader._data)
        reader._open()
        return reader

    def _open(self) -> None:
        try:
            self.info, self._index_at = self._read_header()
        except BaseException:
            self.close()
            raise

    def _read_into(self, view: memoryview, offset: int) -> int:
        """Fill ``view`` from ``offset``; returns the bytes read (fewer at the end of a truncated file)."""
        if self._data is not None:
            part = self._data[offset:offset + len(view)]
            view[:len(part)] = part
            return len(part)
        assert self._file is not None
        return os.preadv(self._file.fileno(), [view], offset)

    def _read(self, n: int, offset: int) -> bytes:
        buffer = bytearray(n)
        return bytes(buffer[:self._read_into(memoryview(buffer), offset)])

    def _fail(self, reason: str) -> VideoDecodeError:
        return VideoDecodeError(self.path, f"{reason}; write it again with flashvid prepare prepare.format=frames")

    def _read_header(self) -> tuple[VideoInfo, int]:
        head = self._read(min(4096, self._size), 0)
        if len(head) < _PREFIX.size or not head.startswith(MAGIC):
            raise self._fail("not a flashvid frame store (bad magic bytes)")
        _, version, header_len, index_at = _PREFIX.unpack_from(head)
        if version != VERSION:
            raise self._fail(f"frame store version {version}, this flashvid reads version {VERSION}")
        if len(head) < _PREFIX.size + header_len:
            head += self._read(_PREFIX.size + header_len - len(head), len(head))
        try:
            meta = json.loads(head[_PREFIX.size:_PREFIX.size + header_len])
            n, fps, w, h = int(meta["num_frames"]), float(meta["fps"]), int(meta["width"]), int(meta["height"])
        except (ValueError, KeyError, TypeError) as e:
            raise self._fail(f"damaged header ({type(e).__name__})") from None
        size = self._size
        if n < 1 or fps <= 0 or w < 1 or h < 1:
            raise self._fail(f"damaged header ({n} frames at {fps:g} fps, {w}x{h})")
        if index_at < _PREFIX.size + header_len or index_at + 8 * (n + 1) != size:
            raise self._fail(f"truncated or damaged: {size} bytes, its index says {index_at + 8 * (n + 1)}")
        return VideoInfo(n, fps, w, h), index_at

    def _offsets(self, first: int, last: int) -> list[int]:
        """Offsets of frames ``first..last + 1`` (the end of ``last``): one read of that stretch of the index."""
        count = last - first + 2
        raw = self._read(8 * count, self._index_at + 8 * first)
        if len(raw) != 8 * count:
            raise self._fail("truncated index")
        return list(struct.unpack(f"<{count}Q", raw))

    def jpegs_at(self, indices: Sequence[int]) -> tuple["np.ndarray", list[int], list[int]]:
        """The JPEGs of the distinct frames of ``indices`` (clamped to the video, as the decoders do), read into one
        buffer: ``(buffer, bounds, order)``. Distinct frame ``k`` is ``buffer[bounds[k]:bounds[k + 1]]``;
        ``order[i]`` is the distinct frame that ``indices[i]`` is. Each JPEG's start and end markers are checked,
        so a damaged file is refused here, in the worker, even when its frames are decoded elsewhere."""
        import numpy as np

        last_frame = self.info.num_frames - 1
        wanted = [min(max(int(i), 0), last_frame) for i in indices]
        distinct = sorted(set(wanted))
        offsets = self._offsets(distinct[0], distinct[-1])
        spans = [(offsets[i - distinct[0]], offsets[i - distinct[0] + 1]) for i in distinct]
        if any(b <= a or b > self._index_at for a, b in spans):
            raise self._fail("damaged index (a frame outside the file)")
        bounds = [0]
        for a, b in spans:
            bounds.append(bounds[-1] + b - a)
        buffer = bytearray(bounds[-1])
        view = memoryview(buffer)
        for k, (a, b) in enumerate(spans):
            got = self._read_into(view[bounds[k]:bounds[k + 1]], a)
            if got != b - a:
                raise self._fail(f"truncated at frame {distinct[k]}")
            if buffer[bounds[k]:bounds[k] + 2] != _SOI or buffer[bounds[k + 1] - 2:bounds[k + 1]] != _EOI:
                raise self._fail(f"frame {distinct[k]} is not a whole JPEG")
        where = {f: k for k, f in enumerate(distinct)}
        return np.frombuffer(buffer, dtype=np.uint8), bounds, [where[f] for f in wanted]

    def frames_at(self, indices: Sequence[int], short_side: int | None = None) -> "torch.Tensor":
        """uint8 RGB frames ``(len(indices), 3, H, W)``, decoded here in one batched call; with ``short_side``
        smaller than the store's, scaled down as the video readers do."""
        buffer, bounds, order = self.jpegs_at(indices)
        clip = stack_frames(decode_jpegs(split_jpegs(buffer, bounds), "cpu", self.path), order)
        if short_side and min(self.info.width, self.info.height) > short_side:
            from .transforms import resize_short_side

            clip = resize_short_side(clip, short_side)
        return clip

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def split_jpegs(buffer: "np.ndarray", bounds: Sequence[int]) -> list["torch.Tensor"]:
    """The JPEGs ``buffer[bounds[k]:bounds[k + 1]]`` as 1-D uint8 CPU tensors (views, no copy)."""
    import torch

    data = torch.from_numpy(buffer)
    return [data[bounds[k]:bounds[k + 1]] for k in range(len(bounds) - 1)]


def decode_jpegs(jpegs: list["torch.Tensor"], device: "str | torch.device", path: str = "") -> list["torch.Tensor"]:
    """``jpegs`` (1-D uint8 CPU tensors) decoded in one batched call on ``device`` (nvJPEG on a GPU): uint8 RGB
    ``(3, H, W)`` each. A JPEG that does not decode raises :class:`VideoDecodeError` naming ``path``."""
    from torchvision.io import ImageReadMode, decode_jpeg

    try:
        return decode_jpeg(jpegs, mode=ImageReadMode.RGB, device=device)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise VideoDecodeError(path, f"a frame is not a valid JPEG ({first}); write the store again with "
                                     "flashvid prepare prepare.format=frames") from None


def stack_frames(frames: Sequence["torch.Tensor"], order: Sequence[int]) -> "torch.Tensor":
    """The clip ``(len(order), 3, H, W)``: distinct decoded ``frames`` picked (and repeated) by ``order``."""
    import torch

    return torch.stack([frames[k] for k in order])
