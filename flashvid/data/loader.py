"""The training loader: which videos an epoch visits, in what order, and where a resumed run picks up.

:class:`EpochShuffleSampler` (and :class:`ShardedEpochSampler`, one DDP rank's share) fix each epoch's order from
``seed + epoch`` alone. :class:`ResumableDataLoader` saves its position in the epoch in checkpoints and, by default,
keeps its decode workers busy across epoch ends (``continuous``): the workers are handed the next epoch's batches
while the current epoch's last ones are still in the queue, instead of running dry and refilling at every epoch
start. On small fine-tuning sets (a few steps an epoch) that refill was a fifth of the loader's time.
"""

from __future__ import annotations

import atexit
import logging
import math
import os
import random
import signal
import weakref
from typing import TYPE_CHECKING, Any, Callable, Iterator, cast

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

if TYPE_CHECKING:
    from .balanced import ClassBalancedOrder

log = logging.getLogger(__name__)


class EpochShuffleSampler(Sampler):
    """Shuffles with ``seed + epoch`` and yields ``(index, epoch)`` keys.

    Carrying the epoch inside the key lets each worker derive its clip randomness from (seed, epoch, index)
    alone, so results do not depend on worker count, persistent workers, a mid-run resume or the loader handing
    workers the next epoch early. Lightning calls ``set_epoch`` each epoch. With ``balanced``
    (:class:`~flashvid.data.balanced.ClassBalancedOrder`) each epoch's order draws classes evenly instead, and the
    epoch is as long as that order.
    """

    def __init__(self, length: int, shuffle: bool = True, seed: int = 0,
                 balanced: ClassBalancedOrder | None = None):
        self.shuffle, self.seed, self.epoch, self.balanced = shuffle, seed, 0, balanced
        self.length = len(balanced) if balanced is not None else length
        self._resume: tuple[int, int] | None = None  # (epoch, samples to skip) for the next pass

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def resume_at(self, epoch: int, start: int) -> None:
        """Make the next pass over ``epoch`` begin at position ``start`` of its order (a mid-epoch resume)."""
        self._resume = (int(epoch), int(start))

    def resume_start(self) -> int:
        """Where the next pass begins: the pending resume position when it is for this epoch, else 0."""
        if self._resume is not None and self._resume[0] == self.epoch:
            return min(self._resume[1], len(self))
        return 0

    def begin_pass(self) -> int:
        """Where the pass over the current epoch that starts now begins; a pending resume applies to it only."""
        start, self._resume = self.resume_start(), None
        return start

    def order_state(self) -> dict[str, Any]:
        """What fixes the order: a checkpoint's position applies only to a run where this is the same."""
        state: dict[str, Any] = {"seed": self.seed, "length": self.length}
        if self.balanced is not None:
            state.update(self.balanced.order_state())
        return state

    def split_order(self, epoch: int) -> list[int]:
        """The whole split's indices for ``epoch``, in the order they are drawn (every process computes the same)."""
        if self.balanced is not None:
            return self.balanced.order(self.seed, epoch)
        order = list(range(self.length))
        if self.shuffle:
            random.Random(self.seed + epoch).shuffle(order)
        return order

    def order(self, epoch: int | None = None) -> list[int]:
        """This process's indices for ``epoch`` (default: the current one), in the order they are drawn."""
        return self.split_order(self.epoch if epoch is None else epoch)

    def keys(self, epoch: int, start: int = 0) -> list[tuple[int, int]]:
        """The ``(index, epoch)`` keys of ``epoch`` from position ``start`` on."""
        return [(i, epoch) for i in self.order(epoch)[start:]]

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter(self.keys(self.epoch, self.begin_pass()))


class ShardedEpochSampler(EpochShuffleSampler, DistributedSampler):
    """One DDP rank's share of :class:`EpochShuffleSampler`'s order, resumable mid-epoch.

    Every rank computes the whole split's order alike (``seed + epoch``), pads it by repeating its head to a multiple
    of the world size and takes every ``num_replicas``-th index from ``rank``, as ``DistributedSampler`` does with
    ``drop_last=False``: all ranks take the same number of steps. A resume skips positions of the rank's own
    share, so the position saved by rank 0 holds for every rank. Being a ``DistributedSampler``, Lightning keeps
    it instead of wrapping the loader's sampler in its own, which re-shards the (already skipped) order.
    """

    def __init__(self, length: int, num_replicas: int, rank: int, shuffle: bool = True, seed: int = 0,
                 balanced: ClassBalancedOrder | None = None):
        EpochShuffleSampler.__init__(self, length, shuffle, seed, balanced)
        DistributedSampler.__init__(self, cast(Dataset, range(self.length)), num_replicas, rank, shuffle, seed)

    def order_state(self) -> dict[str, Any]:
        return {**super().order_state(), "num_replicas": self.num_replicas}

    def order(self, epoch: int | None = None) -> list[int]:
        order = self.split_order(self.epoch if epoch is None else epoch)
        if order:
            order = (order * math.ceil(self.total_size / len(order)))[: self.total_size]
        return order[self.rank : self.total_size : self.num_replicas]

    def __len__(self) -> int:
        return self.num_samples


def _ignore_sigint(worker_id: int) -> None:
    # Ctrl-C and SIGTERM are the main process's to handle (save a checkpoint, then stop): workers must not die of
    # them first. A terminal's Ctrl-C and a scheduler's SIGTERM (SLURM, Kubernetes) reach the whole process group,
    # and a worker that dies of it makes the main process fail ("DataLoader worker killed") before it can save.
    # The workers still end with the main process (PyTorch's watchdog and shutdown).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


class _LowerPriority:
    """Worker init: ``os.nice(niceness)``. Loader workers that outnumber the free cores then yield them to the
    training process, whose kernel launches set the GPU's pace (measured: docs/benchmarks.md, issue 19)."""

    def __init__(self, niceness: int):
        self.niceness = niceness

    def __call__(self, worker_id: int) -> None:
        os.nice(self.niceness)


class _ChainedInit:
    def __init__(self, first: Callable[[int], None], then: Callable[[int], None] | None):
        self.first, self.then = first, then

    def __call__(self, worker_id: int) -> None:
        self.first(worker_id)
        if self.then is not None:
            self.then(worker_id)


# Loaders whose persistent workers may still run. At interpreter exit, multiprocessing's own exit handler ends
# daemonic children with SIGTERM, which the workers ignore (above), then waits for them: a script that still held
# a loader with persistent workers hung there. This handler, registered after multiprocessing's and so run before
# it, shuts those workers down the way DataLoader does.
_LIVE_LOADERS: weakref.WeakSet[DataLoader] = weakref.WeakSet()


@atexit.register
def _shut_down_live_workers() -> None:
    for loader in list(_LIVE_LOADERS):
        iterator = getattr(loader, "_iterator", None)
        if iterator is not None and hasattr(iterator, "_shutdown_workers"):
            iterator._shutdown_workers()


class _EpochStream:
    """The batches of key lists the workers are fed in continuous mode: epoch after epoch, without end.

    It counts epochs itself (from ``start``) instead of reading the sampler's ``epoch``: it reaches the next epoch
    before Lightning calls ``set_epoch`` for it. (timm's ``_RepeatSampler`` re-iterates the sampler there, and a
    ``DistributedSampler`` then repeats the last epoch's order.) Batches never span two epochs; ``drop_last``
    applies to each epoch as ``BatchSampler`` would.
    """

    def __init__(self, sampler: EpochShuffleSampler, batch_size: int, drop_last: bool):
        # (no reference to the loader: a cycle through its worker iterator would keep the workers alive until the
        # garbage collector runs, and at interpreter exit they ignore the SIGTERM that would end them)
        self._sampler, self.batch_size, self.drop_last = sampler, batch_size, drop_last
        self.start = (0, 0)  # (epoch, position) of the first batch the next iteration hands out
        self.handed: tuple[int, int] | None = None  # (epoch, position) of the last batch handed to the workers

    def __len__(self) -> int:  # what DataLoader.__len__ reports: batches per epoch, as BatchSampler counts them
        n = len(self._sampler)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        size, drop_last = self.batch_size, self.drop_last
        epoch, start = self.start
        while True:
            keys = self._sampler.keys(epoch, start)
            for i in range(0, len(keys), size):
                batch = keys[i : i + size]
                if drop_last and len(batch) < size:
                    break
                self.handed = (epoch, start + i)
                yield batch
            epoch, start = epoch + 1, 0


class ResumableDataLoader(DataLoader):
    """A ``DataLoader`` over an :class:`EpochShuffleSampler` whose position survives a checkpoint.

    Lightning saves ``state_dict()`` of every loader that has one in its checkpoints and, on a mid-epoch resume,
    calls ``load_state_dict()`` before the epoch's iterator is made: the sampler then starts where the
    interrupted run stopped, so no sample is seen twice or skipped. The position counts batches handed to the
    training loop (not those prefetched by workers). Under DDP the sampler is a :class:`ShardedEpochSampler` and
    the position counts samples of this rank's share: the shares are equally long, so every rank is at the same
    position and rank 0's state, the one Lightning writes, resumes them all. Workers also ignore SIGINT and
    SIGTERM, so Ctrl-C or a scheduler's SIGTERM to the process group reaches the main process's graceful shutdown
    instead of killing them. ``worker_niceness`` > 0 lowers the workers' CPU priority by that much (``os.nice``).

    ``continuous`` (with workers, persistent ones): one worker iterator serves epoch after epoch, fed by
    :class:`_EpochStream`, so the workers decode the next epoch's first batches while this one's last are used,
    and validation in between. Each epoch still hands out exactly its own batches, the same as without it; an
    epoch that does not start where the stream stands (a resume, an epoch cut short by ``limit_train_batches``
    or ``max_steps``, a ``set_epoch`` elsewhere) resets the workers' queues and starts the stream there.

    Each loader has a ``generator`` of its own (seeded from the sampler's seed): building an iterator draws the
    workers' base seed from it, not from the global torch RNG, so the training's random augmentation does not
    depend on when iterators are built (every epoch without workers, once with persistent workers, again after a
    resume). Clips and crops do not depend on worker seeds (see :func:`~flashvid.data.dataset._item_rng`).
    """

    def __init__(self, *args: Any, continuous: bool = False, worker_niceness: int = 0, **kwargs: Any):
        if kwargs.get("num_workers", 0) > 0:
            if worker_niceness:
                kwargs["worker_init_fn"] = _ChainedInit(_LowerPriority(worker_niceness), kwargs.get("worker_init_fn"))
            kwargs["worker_init_fn"] = _ChainedInit(_ignore_sigint, kwargs.get("worker_init_fn"))
        if kwargs.get("generator") is None:
            kwargs["generator"] = torch.Generator().manual_seed(int(getattr(kwargs.get("sampler"), "seed", 0)))
        super().__init__(*args, **kwargs)
        self.continuous = continuous
        if self.num_workers > 0:
            _LIVE_LOADERS.add(self)
        self._position = 0  # samples of the current epoch's order already handed out
        sampler = self._epoch_sampler()
        self._stream = (_EpochStream(sampler, cast(int, self.batch_size), self.drop_last)
                        if sampler is not None and self._can_stream() else None)
        self._stream_next: tuple[int, int] | None = None  # (epoch, position) of the stream's next batch
        self._pass = 0  # which epoch pass owns the stream (an abandoned pass must not take the next one's batches)

    def _can_stream(self) -> bool:
        return (self.continuous and self.num_workers > 0 and self.persistent_workers
                and self.batch_size is not None and len(cast(Any, self.batch_sampler)) > 0)

    @property
    def streaming(self) -> bool:
        """Whether the workers run on across epoch ends (``continuous`` and persistent workers)."""
        return getattr(self, "_stream", None) is not None

    @property
    def _index_sampler(self) -> Any:  # what DataLoader's iterators draw index batches from
        stream = getattr(self, "_stream", None)
        return stream if stream is not None else super()._index_sampler

    def _epoch_sampler(self) -> EpochShuffleSampler | None:
        for s in (self.sampler, getattr(self.batch_sampler, "sampler", None)):
            if isinstance(s, EpochShuffleSampler):
                return s
        return None

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]  # DataLoader: _BaseDataLoaderIter
        # A generator: its body runs at the first next(), after Lightning's set_epoch and load_state_dict, although
        # Lightning calls iter() before them.
        sampler = self._epoch_sampler()
        step = self.batch_size or 1
        if self._stream is None or sampler is None:
            self._position = sampler.resume_start() if sampler is not None else 0
            for batch in super().__iter__():
                self._position += step
                yield batch
            return
        epoch, start = sampler.epoch, sampler.begin_pass()
        self._position = start
        self._pass += 1
        this_pass = self._pass
        if self._iterator is None or self._stream_next != (epoch, start):
            self._stream.start = (epoch, start)
            workers = super().__iter__()  # persistent workers: a new iterator the first time, then a reset
        else:
            workers = self._iterator
        left = len(sampler) - start
        batches = left // step if self.drop_last else math.ceil(left / step)
        for n in range(1, batches + 1):
            if self._pass != this_pass:  # a newer pass took the stream over
                return
            batch = next(workers)
            self._position += step
            self._stream_next = (epoch, self._position) if n < batches else (epoch + 1, 0)
            yield batch

    def state_dict(self) -> dict[str, Any]:
        sampler = self._epoch_sampler()
        if sampler is None:
            return {}
        return {"epoch": sampler.epoch, "position": min(self._position, len(sampler)), **sampler.order_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        sampler = self._epoch_sampler()
        if sampler is None or not state:
            return
        saved = {k: v for k, v in state.items() if k not in ("epoch", "position")}
        if saved != sampler.order_state():
            log.warning("flashvid: the checkpoint's data order (%s) differs from this run's (%s): the interrupted "
                        "epoch restarts from its beginning", _describe(saved), _describe(sampler.order_state()))
            return
        sampler.resume_at(state["epoch"], state["position"])


def _describe(order_state: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(order_state.items()))
