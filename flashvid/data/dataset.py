"""Map-style clip datasets: one item = one video's clip (or all its test views), uint8.

Map-style (with ``__len__``) rather than pytorchvideo's iterable datasets, so samplers shard evenly across workers
and ranks and an epoch has a known length. A file that fails to decode yields a failure record instead of raising:
:func:`collate_clips` drops it from the batch and lists it under ``batch["failed"]``, so one broken download never
stops a run and every failure reaches the main process to be counted and reported.
"""

from __future__ import annotations

import logging
import random
import signal
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Literal, Sequence

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from .decoding import VideoDecodeError, open_video
from .sampling import ClipMode, ClipSampling
from .sources import VideoSample

log = logging.getLogger(__name__)

Split = Literal["train", "val", "test", "predict"]


@dataclass(frozen=True)
class DecodeFailure:
    index: int
    path: str
    reason: str


def _item_rng(seed: int, epoch: int, index: int) -> random.Random:
    """Clip choice depends only on (seed, epoch, index): the same with any number of workers or after a resume."""
    return random.Random(zlib.crc32(f"{seed}:{epoch}:{index}".encode()))


@contextmanager
def _seeded_globals(rng: random.Random | None) -> Iterator[None]:
    """Seed Python's and torch's global RNGs from the item's rng for the transform, then restore them.

    Random crops (ours, and torchvision's in a user's transform) draw from the global RNGs, which each DataLoader
    worker seeds differently: without this the same seed gave different crops with 0 and 2 workers.
    """
    if rng is None:
        yield
        return
    seed = rng.getrandbits(63)
    state = random.getstate()
    random.seed(seed)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(seed)
            yield
    finally:
        random.setstate(state)


class VideoClipDataset(Dataset):
    """Decode clips of ``samples``.

    ``clip_mode`` picks the clip start (``random`` for training, ``center``/``uniform`` for evaluation);
    ``num_clips > 1`` returns every clip of a video together as views ``(V, T, C, H, W)``, and a ``transform``
    that returns ``(crops, T, C, H, W)`` (:class:`~flashvid.data.transforms.MultiCrop`) multiplies the views.
    """

    def __init__(
        self,
        samples: Sequence[VideoSample],
        sampling: ClipSampling,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        clip_mode: ClipMode = "random",
        num_clips: int = 1,
        decoder: str = "auto",
        seed: int = 0,
    ):
        self.samples = list(samples)
        self.sampling = sampling
        self.transform = transform
        self.clip_mode = clip_mode
        self.num_clips = num_clips
        self.decoder = decoder
        self.seed = seed

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any] | DecodeFailure:
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        sample = self.samples[index]
        try:
            video = self.load(sample.path, _item_rng(self.seed, epoch, index))
        except VideoDecodeError as e:
            return DecodeFailure(index, e.path, e.reason)
        except Exception as e:  # a transform or decoder bug on one odd file must not kill the run either
            return DecodeFailure(index, sample.path, f"{type(e).__name__}: {e}")
        return {"video": video, "label": sample.label, "index": index, "path": sample.path}

    def load(self, path: str, rng: random.Random | None = None) -> torch.Tensor:
        """The clip(s) of one file: ``(T, C, H, W)``, or ``(V, T, C, H, W)`` when there are several views.

        Only the frames the clips need are decoded, so memory is bounded by ``num_frames`` x frame size whatever
        the file's length. With ``rng`` the random transforms draw from it too (through a private seeding of
        ``random``), so a sample's crop depends on (seed, epoch, index) alone, as its clip start does.
        """
        reader = open_video(path, self.decoder)
        try:
            info = reader.info
            clips = self.sampling.clips(info.num_frames, info.fps, self.clip_mode, self.num_clips, rng)
            flat = [i for clip in clips for i in clip]
            frames = reader.frames_at(flat)
        finally:
            reader.close()
        views: list[torch.Tensor] = []
        with _seeded_globals(rng):
            for c in range(len(clips)):
                clip = frames[c * self.sampling.num_frames : (c + 1) * self.sampling.num_frames]
                clip = self.transform(clip) if self.transform is not None else clip
                views.extend(clip.unbind(0) if clip.dim() == 5 else [clip])
        if self.num_clips == 1 and len(views) == 1:
            return views[0]
        return torch.stack(views)


def collate_clips(items: Sequence[dict[str, Any] | DecodeFailure]) -> dict[str, Any]:
    """Stack good items; list the failed ones under ``failed`` (``video`` is None when all failed)."""
    good = [it for it in items if not isinstance(it, DecodeFailure)]
    return {
        "video": torch.stack([it["video"] for it in good]) if good else None,
        "label": torch.tensor([it["label"] for it in good], dtype=torch.long),
        "index": torch.tensor([it["index"] for it in good], dtype=torch.long),
        "path": [it["path"] for it in good],
        "failed": [{"index": f.index, "path": f.path, "reason": f.reason}
                   for f in items if isinstance(f, DecodeFailure)],
    }


class EpochShuffleSampler(Sampler):
    """Shuffles with ``seed + epoch`` and yields ``(index, epoch)`` keys.

    Carrying the epoch inside the key lets each worker derive its clip randomness from (seed, epoch, index)
    alone, so results do not depend on worker count, persistent workers or a mid-run resume. Lightning calls
    ``set_epoch`` each epoch (also through its distributed wrapper).
    """

    def __init__(self, length: int, shuffle: bool = True, seed: int = 0):
        self.length, self.shuffle, self.seed, self.epoch = length, shuffle, seed, 0
        self._resume: tuple[int, int] | None = None  # (epoch, samples to skip) for the next pass

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def resume_at(self, epoch: int, start: int) -> None:
        """Make the next pass over ``epoch`` begin at position ``start`` of its order (a mid-epoch resume)."""
        self._resume = (int(epoch), int(start))

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order = list(range(self.length))
        if self.shuffle:
            random.Random(self.seed + self.epoch).shuffle(order)
        start = 0
        if self._resume is not None and self._resume[0] == self.epoch:
            start = min(self._resume[1], self.length)
        self._resume = None
        return iter((i, self.epoch) for i in order[start:])


def _ignore_sigint(worker_id: int) -> None:
    # Ctrl-C is the main process's to handle (save a checkpoint, then stop): workers must not die of it first.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class _ChainedInit:
    def __init__(self, first: Callable[[int], None], then: Callable[[int], None] | None):
        self.first, self.then = first, then

    def __call__(self, worker_id: int) -> None:
        self.first(worker_id)
        if self.then is not None:
            self.then(worker_id)


class ResumableDataLoader(DataLoader):
    """A ``DataLoader`` over an :class:`EpochShuffleSampler` whose position survives a checkpoint.

    Lightning saves ``state_dict()`` of every loader that has one in its checkpoints and, on a mid-epoch resume,
    calls ``load_state_dict()`` before the epoch's iterator is made: the sampler then starts where the
    interrupted run stopped, so no sample is seen twice or skipped. The position counts batches handed to the
    training loop (not those prefetched by workers). Workers also ignore SIGINT, so Ctrl-C reaches the main
    process's graceful shutdown instead of killing them.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        if kwargs.get("num_workers", 0) > 0:
            kwargs["worker_init_fn"] = _ChainedInit(_ignore_sigint, kwargs.get("worker_init_fn"))
        super().__init__(*args, **kwargs)
        self._position = 0  # samples of the current epoch's order already handed out
        self.after_iterator_created: Callable[[], None] | None = None  # one-shot hook (exact resume)

    def _epoch_sampler(self) -> EpochShuffleSampler | None:
        for s in (self.sampler, getattr(self.batch_sampler, "sampler", None)):
            if isinstance(s, EpochShuffleSampler):
                return s
        return None

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]  # DataLoader: _BaseDataLoaderIter
        sampler = self._epoch_sampler()
        start = 0
        if sampler is not None and sampler._resume is not None and sampler._resume[0] == sampler.epoch:
            start = sampler._resume[1]
        self._position = start
        step = self.batch_size or 1
        iterator = super().__iter__()  # (draws its worker base seed from the torch RNG)
        hook, self.after_iterator_created = self.after_iterator_created, None
        if hook is not None:
            hook()
        for batch in iterator:
            self._position += step
            yield batch

    def state_dict(self) -> dict[str, Any]:
        sampler = self._epoch_sampler()
        if sampler is None:
            return {}
        return {"epoch": sampler.epoch, "position": min(self._position, len(sampler)), "seed": sampler.seed,
                "length": len(sampler)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        sampler = self._epoch_sampler()
        if sampler is None or not state:
            return
        if state.get("length") != len(sampler) or state.get("seed") != sampler.seed:
            log.warning("flashvid: the checkpoint's data order (%s samples, seed %s) differs from this run's (%s, "
                        "%s): the interrupted epoch restarts from its beginning", state.get("length"),
                        state.get("seed"), len(sampler), sampler.seed)
            return
        sampler.resume_at(state["epoch"], state["position"])
