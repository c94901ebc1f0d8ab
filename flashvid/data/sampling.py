"""Which frames make a clip.

A clip is ``num_frames`` frames ``stride`` source frames apart. The stride comes from ``clip_duration`` seconds
when given, else from ``sampling_rate`` measured at ``target_fps`` (PySlowFast's convention: a 30 fps model
setting samples the same span of time from a 25 fps or 29.97 fps video). ``target_fps=None`` makes
``sampling_rate`` a plain stride in the video's own frames (MMAction2's ``frame_interval``).
Clips longer than the video repeat its last frame.

``clip_sampling="segments"`` (TSN's segment sampling, MMAction2's ``SampleFrames(clip_len=1, num_clips=N)``)
takes one frame from each of ``num_frames`` equal segments of the whole video instead: at a random offset in its
segment when training, at the segment's centre otherwise; ``sampling_rate`` and ``clip_duration`` play no part.
Any backbone can use it; the TSN/TSM entries do by default.

``rate_jitter`` (training only) scales the stride of each random clip by a factor drawn log-uniformly from
``[1 / rate_jitter, rate_jitter]``: the same action seen faster or slower, a temporal scale augmentation.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any, Literal, Sequence

ClipMode = Literal["random", "center", "uniform"]
CLIP_SAMPLINGS = ("stride", "segments")


@dataclass(frozen=True)
class ClipSampling:
    num_frames: int = 16
    sampling_rate: float = 4
    clip_duration: float | None = None
    target_fps: float | None = 30.0
    rate_jitter: float = 1.0
    clip_sampling: str = "stride"  # or "segments": one frame per segment of the whole video (TSN)

    def __post_init__(self) -> None:
        if self.clip_sampling not in CLIP_SAMPLINGS:
            raise ValueError(f"data.clip_sampling={self.clip_sampling!r} is not one of {', '.join(CLIP_SAMPLINGS)} "
                             "(stride: num_frames frames sampling_rate apart; segments: one frame per segment)")
        if self.rate_jitter < 1.0:
            raise ValueError(f"rate_jitter must be >= 1 (1 = off), got {self.rate_jitter}")
        if self.num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {self.num_frames}")
        if self.clip_duration is None and self.sampling_rate <= 0:
            raise ValueError(f"sampling_rate must be > 0, got {self.sampling_rate}")
        if self.clip_duration is not None and self.clip_duration <= 0:
            raise ValueError(f"clip_duration must be > 0 seconds, got {self.clip_duration}")

    def stride(self, fps: float) -> float:
        """Distance between sampled frames, in the video's own frames."""
        if self.clip_duration is not None:
            return max(self.clip_duration * fps / self.num_frames, 1e-6)
        if self.target_fps:
            return self.sampling_rate * fps / self.target_fps
        return float(self.sampling_rate)

    def span(self, fps: float) -> float:
        """Frames covered by one clip, from its first sampled frame to one stride past its last."""
        return self.num_frames * self.stride(fps)

    def indices(self, start: float, fps: float, total: int, scale: float = 1.0) -> list[int]:
        stride = self.stride(fps) * scale
        last = max(total - 1, 0)
        return [min(int(start + i * stride), last) for i in range(self.num_frames)]

    def clip_starts(self, total: int, fps: float, mode: ClipMode, num_clips: int = 1,
                    rng: random.Random | None = None) -> list[float]:
        """Start frames of the clips to take from a video of ``total`` frames."""
        room = max(total - self.span(fps), 0.0)
        if mode == "random":
            return [(rng or random).uniform(0.0, room)]
        if mode == "center":
            return [room / 2]
        if mode == "uniform":
            if num_clips == 1:
                return [room / 2]
            # the centres of num_clips equal segments (MMAction2's SampleFrames test mode), not [0 .. end]: the
            # first and last seconds of real footage (titles, fades, the camera being raised) got two of five
            # views, and one view (num_clips=1) stays the centre clip
            return [room * (i + 0.5) / num_clips for i in range(num_clips)]
        raise ValueError(f"unknown clip mode {mode!r}: choose random, center or uniform")

    @property
    def segments(self) -> bool:
        return self.clip_sampling == "segments"

    def segment_clips(self, total: int, mode: ClipMode, num_clips: int = 1,
                      rng: random.Random | None = None) -> list[list[int]]:
        """One frame per each of ``num_frames`` equal segments of the video: a random offset within each segment
        (``random``), the segment's centre (``center``), or for ``uniform`` test views ``num_clips`` evenly
        spaced offsets, one view each (MMAction2's test mode: view ``c`` at ``(c + 0.5) / num_clips`` of every
        segment). Videos shorter than ``num_frames`` repeat frames."""
        seg = max(total, 1) / self.num_frames
        last = max(total - 1, 0)

        def at(offsets: Sequence[float]) -> list[int]:
            return [min(int(i * seg + o * seg), last) for i, o in enumerate(offsets)]

        if mode == "random":
            r = rng or random
            return [at([r.random() for _ in range(self.num_frames)])]
        if mode == "center" or (mode == "uniform" and num_clips == 1):
            return [at([0.5] * self.num_frames)]
        if mode == "uniform":
            return [at([(c + 0.5) / num_clips] * self.num_frames) for c in range(num_clips)]
        raise ValueError(f"unknown clip mode {mode!r}: choose random, center or uniform")

    def repeated_starts(self, total: int, fps: float, n: int, rng: random.Random | None = None,
                        keyframes: Sequence[int] | None = None, scales: Sequence[float] | None = None
                        ) -> list[float]:
        """``n`` random training clip starts that share one decoded span.

        The span is a random window start, then ``n`` starts drawn within one clip length of it, so one seek and
        one pass of decoding serve every clip (``clips_per_video``): at most two clip lengths, or one plus the
        longest jittered clip given ``scales`` (each clip's stride factor, see :meth:`repeated_clips`). With
        ``keyframes`` (the file's keyframe indices) the window starts on a random keyframe, so no frame before the
        clip is decoded; clip starts can then only fall in the first clip length after a keyframe
        (``keyframe_aligned``).
        """
        rng = rng or random
        span = self.span(fps)
        room = max(total - span * max(scales or [1.0]), 0.0)  # the longest clip still ends inside the video
        if keyframes:
            usable = [k for k in keyframes if k <= room] or [0]
            w0 = float(rng.choice(usable))
        else:
            w0 = rng.uniform(0.0, max(room - span, 0.0)) if n > 1 else rng.uniform(0.0, room)
        if n == 1:
            return [w0]
        return [min(w0 + rng.uniform(0.0, span), room) for _ in range(n)]

    def repeated_clips(self, total: int, fps: float, n: int, rng: random.Random | None = None,
                       keyframes: Sequence[int] | None = None) -> list[list[int]]:
        """``n`` random training clips from one decoded span (:meth:`repeated_starts`), each with its own
        ``rate_jitter`` stride, as :meth:`clips` gives a single random clip."""
        r = rng or random
        if self.segments:
            if keyframes:
                raise ValueError("data.keyframe_aligned needs data.clip_sampling=stride "
                                 "(segments span the whole video)")
            return [self.segment_clips(total, "random", 1, r)[0] for _ in range(n)]
        scales = [self._jitter(r) for _ in range(n)]
        starts = self.repeated_starts(total, fps, n, rng, keyframes, scales)
        return [self.indices(s, fps, total, k) for s, k in zip(starts, scales)]

    def _jitter(self, rng: Any) -> float:  # a random.Random, or the random module itself
        """A clip's stride factor, log-uniform in ``[1 / rate_jitter, rate_jitter]``; 1 (nothing drawn) when off."""
        if self.rate_jitter <= 1.0:
            return 1.0
        bound = math.log(self.rate_jitter)
        return math.exp(rng.uniform(-bound, bound))

    def clips(self, total: int, fps: float, mode: ClipMode, num_clips: int = 1,
              rng: random.Random | None = None) -> list[list[int]]:
        if self.segments:
            return self.segment_clips(total, mode, num_clips, rng)
        if mode == "random" and self.rate_jitter > 1.0:
            r = rng or random
            scale = self._jitter(r)
            room = max(total - self.span(fps) * scale, 0.0)
            return [self.indices(r.uniform(0.0, room), fps, total, scale)]
        return [self.indices(s, fps, total) for s in self.clip_starts(total, fps, mode, num_clips, rng)]
