"""Per-sample CPU transforms (uint8 in, uint8 out) and per-batch GPU augmentation (uint8 in, normalised float out).

Workers only crop and resize, and ship uint8: a quarter of float32's bytes to pin and copy. Everything that needs
floats (random resized crop, flip, colour jitter, normalisation) runs once per batch on the GPU with Kornia.
A video tensor is ``(T, C, H, W)`` per sample and ``(B, T, C, H, W)`` per batch throughout. The decoders hand out
frames stored channels-last (``(T, H, W, C)`` memory, viewed as ``(T, C, H, W)``), and the CPU side keeps that
storage: reordering bytes on the CPU cost as much as the resize itself. ``BatchAugmentation`` returns contiguous
floats, so models see the usual layout.
"""

from __future__ import annotations

import math
import random
from typing import Callable, Sequence

import torch
from torch import nn
from torchvision.transforms.v2 import functional as TF

ClipTransform = Callable[[torch.Tensor], torch.Tensor]


def resize_short_side(video: torch.Tensor, size: int) -> torch.Tensor:
    """Resize ``(T, C, H, W)`` so its shorter side is ``size``, keeping the aspect ratio."""
    h, w = video.shape[-2:]
    if min(h, w) == size:
        return video
    if h <= w:
        new_h, new_w = size, max(size, round(w * size / h))
    else:
        new_h, new_w = max(size, round(h * size / w)), size
    return TF.resize(video, [new_h, new_w], antialias=True)


def _crop(video: torch.Tensor, top: int, left: int, size: int) -> torch.Tensor:
    return video[..., top : top + size, left : left + size]


def _crop_resized(video: torch.Tensor, top: int, left: int, window: int, size: int) -> torch.Tensor:
    """The ``window`` square at (top, left), resized to ``size``.

    Equals resizing the whole frame by ``size / window`` and cropping (up to the filter at the border), but only
    the kept square is resampled: 2-3x cheaper for the usual 256-320 short side and 224-256 crops.
    """
    crop = _crop(video, top, left, window)
    return crop if window == size else TF.resize(crop, [size, size], antialias=True)


def _window_of(short: int, crop_size: int, short_side: int) -> int:
    """Source pixels (of a frame whose short side is ``short``) that become ``crop_size`` once the short side is
    scaled to ``short_side``."""
    return min(max(round(crop_size * short / short_side), 1), short)


def _pad_to(video: torch.Tensor, size: int) -> torch.Tensor:
    h, w = video.shape[-2:]
    if h >= size and w >= size:
        return video
    return TF.pad(video, [0, 0, max(size - w, 0), max(size - h, 0)])


class RandomShortSideCrop:
    """Train: short side to a random size in ``[min_size, max_size]``, then a random square crop (PySlowFast)."""

    def __init__(self, crop_size: int, min_size: int, max_size: int | None = None):
        self.crop_size, self.min_size, self.max_size = crop_size, min_size, max_size or min_size

    @property
    def decode_short_side(self) -> int:
        """The largest short side this resizes to: decoders may hand over much larger frames already that small."""
        return self.max_size

    def __call__(self, video: torch.Tensor) -> torch.Tensor:
        short_side = random.randint(self.min_size, self.max_size)
        if short_side < self.crop_size:  # the crop is larger than the resized frame: resize, pad, crop
            video = _pad_to(resize_short_side(video, short_side), self.crop_size)
            h, w = video.shape[-2:]
            return _crop(video, random.randint(0, h - self.crop_size), random.randint(0, w - self.crop_size),
                         self.crop_size)
        h, w = video.shape[-2:]
        top, left, window = self._box(h, w, short_side)
        return _crop_resized(video, top, left, window, self.crop_size)

    def _box(self, h: int, w: int, short_side: int) -> tuple[int, int, int]:
        window = _window_of(min(h, w), self.crop_size, short_side)
        return random.randint(0, h - window), random.randint(0, w - window), window

    def crop_box(self, height: int, width: int) -> tuple[int, int, int] | None:
        """(top, left, size) of the square ``__call__`` cuts from frames of this size, drawn from ``random`` as
        ``__call__`` draws it, when that is all it does (no resize: a copy at the short side); else None."""
        short_side = random.randint(self.min_size, self.max_size)
        if short_side < self.crop_size:
            return None
        top, left, window = self._box(height, width, short_side)
        return (top, left, window) if window == self.crop_size else None

    def __repr__(self) -> str:
        return f"RandomShortSideCrop(crop={self.crop_size}, short_side=[{self.min_size}, {self.max_size}])"


class ShortSideCenterCrop:
    """Validation: short side to ``resize_size``, then the centre square of ``crop_size``."""

    def __init__(self, crop_size: int, resize_size: int):
        self.crop_size, self.resize_size = crop_size, resize_size

    @property
    def decode_short_side(self) -> int:
        """The short side this resizes to: decoders may hand over much larger frames already that small."""
        return self.resize_size

    def __call__(self, video: torch.Tensor) -> torch.Tensor:
        if self.resize_size < self.crop_size:
            video = _pad_to(resize_short_side(video, self.resize_size), self.crop_size)
            h, w = video.shape[-2:]
            return _crop(video, (h - self.crop_size) // 2, (w - self.crop_size) // 2, self.crop_size)
        h, w = video.shape[-2:]
        top, left, window = self._box(h, w)
        return _crop_resized(video, top, left, window, self.crop_size)

    def _box(self, h: int, w: int) -> tuple[int, int, int]:
        window = _window_of(min(h, w), self.crop_size, self.resize_size)
        return (h - window) // 2, (w - window) // 2, window

    def crop_box(self, height: int, width: int) -> tuple[int, int, int] | None:
        """(top, left, size) of the square ``__call__`` cuts from frames of this size, when that is all it does
        (no resize: a copy at the short side); else None."""
        if self.resize_size < self.crop_size:
            return None
        top, left, window = self._box(height, width)
        return (top, left, window) if window == self.crop_size else None

    def __repr__(self) -> str:
        return f"ShortSideCenterCrop(crop={self.crop_size}, short_side={self.resize_size})"


class MultiCrop:
    """Test: short side to ``resize_size``, then ``num_crops`` squares of ``crop_size`` spread along the long side
    (left/centre/right on landscape frames, top/middle/bottom on portrait ones), centred on the short side.

    The crops are taken at the scale of the single-view :class:`ShortSideCenterCrop` (the middle crop *is* that
    view), so multi-view only adds views. Resizing the short side to ``crop_size`` instead (``resize_size=None``)
    shrinks objects to 224/256 of what training and one-view evaluation show the model, outside the training
    scales of a fixed-scale recipe: on real footage that made 5x3 views score below one view. Returns
    ``(num_crops, T, C, H, W)``.
    """

    def __init__(self, crop_size: int, num_crops: int = 3, resize_size: int | None = None):
        self.crop_size, self.num_crops = crop_size, num_crops
        self.resize_size = resize_size or crop_size

    @property
    def decode_short_side(self) -> int:
        """The short side this resizes to: decoders may hand over much larger frames already that small."""
        return self.resize_size

    def __call__(self, video: torch.Tensor) -> torch.Tensor:
        s = self.crop_size
        if self.resize_size < s:  # the crop is larger than the resized frame: resize, pad, crop
            video = _pad_to(resize_short_side(video, self.resize_size), s)
            window = s
        else:
            window = _window_of(min(video.shape[-2:]), s, self.resize_size)
        h, w = video.shape[-2:]
        n = self.num_crops
        if n == 1:
            offsets = [((h - window) // 2, (w - window) // 2)]
        elif w >= h:
            offsets = [((h - window) // 2, (w - window) * i // (n - 1)) for i in range(n)]
        else:
            offsets = [((h - window) * i // (n - 1), (w - window) // 2) for i in range(n)]
        return torch.stack([_crop_resized(video, t, left, window, s) for t, left in offsets])

    def __repr__(self) -> str:
        return f"MultiCrop(crop={self.crop_size}, num_crops={self.num_crops}, short_side={self.resize_size})"


def random_resized_crop_boxes(n: int, height: int, width: int, scale: tuple[float, float],
                              ratio: tuple[float, float], device: torch.device | str = "cpu") -> torch.Tensor:
    """``n`` random (x1, y1, x2, y2) boxes with area ``scale`` of the frame and aspect ``ratio`` (torchvision's
    RandomResizedCrop distribution, drawn in one vectorised step instead of a retry loop)."""
    area = height * width * torch.empty(n, device=device).uniform_(*scale)
    log_r = torch.empty(n, device=device).uniform_(math.log(ratio[0]), math.log(ratio[1]))
    aspect = torch.exp(log_r)
    w = torch.sqrt(area * aspect).clamp(max=width)
    h = torch.sqrt(area / aspect).clamp(max=height)
    x1 = torch.rand(n, device=device) * (width - w)
    y1 = torch.rand(n, device=device) * (height - h)
    return torch.stack([x1, y1, x1 + w, y1 + h], dim=1)


class BatchAugmentation(nn.Module):
    """GPU per-batch transform: uint8 ``(B, T, C, H, W)`` (or ``(B, V, T, C, H, W)`` views) to normalised floats.

    Training applies a random resized crop and a horizontal flip with the same parameters on every frame of a
    clip (different per clip), then optional colour jitter. ``backend="fused"`` (default) crops, resizes and
    flips all frames of the batch in one ``roi_align`` kernel (exact bilinear; area-averaging when shrinking);
    ``backend="kornia"`` runs the same augmentations through Kornia's ``VideoSequential``, which is the place to
    add other Kornia augmentations. Colour jitter always uses Kornia. Evaluation only normalises.
    """

    def __init__(
        self,
        mean: Sequence[float],
        std: Sequence[float],
        crop_size: int,
        train: bool,
        scale: tuple[float, float] = (0.25, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        hflip: float = 0.5,
        color_jitter: float = 0.0,
        color_jitter_p: float = 0.8,
        backend: str = "fused",
    ):
        super().__init__()
        if backend not in ("fused", "kornia"):
            raise ValueError(f"augmentation backend must be 'fused' or 'kornia', got {backend!r}")
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(-1, 1, 1), persistent=False)
        self.train_mode, self.backend = train, backend
        self.crop_size, self.scale, self.ratio, self.hflip = crop_size, tuple(scale), tuple(ratio), hflip
        self.crop = train and (scale[0] < 1.0 or scale[1] < 1.0)
        self.kornia: nn.Module | None = None
        if train:
            import kornia.augmentation as K

            augs: list[nn.Module] = []
            if backend == "kornia":
                if self.crop:
                    augs.append(K.RandomResizedCrop((crop_size, crop_size), scale=scale, ratio=ratio))
                else:  # no scale jitter: still cut the model's crop out of the larger train short side
                    augs.append(K.RandomCrop((crop_size, crop_size), pad_if_needed=True))
                if hflip > 0:
                    augs.append(K.RandomHorizontalFlip(p=hflip))
            if color_jitter > 0:
                j = color_jitter
                augs.append(K.ColorJitter(j, j, j, min(j / 4, 0.5), p=color_jitter_p))
            if augs:
                self.kornia = K.VideoSequential(*augs, data_format="BTCHW", same_on_frame=True)

    def _crop_flip(self, x: torch.Tensor) -> torch.Tensor:
        """Random resized crop + flip of ``(B, T, C, H, W)`` floats, one box and one coin per clip."""
        from torchvision.ops import roi_align

        b, t, c, h, w = x.shape
        s = self.crop_size
        if self.crop:
            boxes = random_resized_crop_boxes(b, h, w, self.scale, self.ratio, x.device)
        else:  # no scale jitter: a plain random crop of the model's size (the whole frame if it is smaller)
            cw, ch = min(s, w), min(s, h)
            x1 = torch.randint(0, w - cw + 1, (b,), device=x.device).float()
            y1 = torch.randint(0, h - ch + 1, (b,), device=x.device).float()
            boxes = torch.stack([x1, y1, x1 + cw, y1 + ch], dim=1)
        rois = torch.cat([torch.arange(b * t, device=x.device, dtype=x.dtype)[:, None],
                          boxes.to(x.dtype).repeat_interleave(t, dim=0)], dim=1)
        out = roi_align(x.reshape(b * t, c, h, w), rois, output_size=(s, s), spatial_scale=1.0,
                        sampling_ratio=0, aligned=True).view(b, t, c, s, s)
        if self.hflip > 0:
            flip = torch.rand(b, device=x.device) < self.hflip
            out = torch.where(flip.view(b, 1, 1, 1, 1), out.flip(-1), out)
        return out

    @torch.no_grad()
    def forward(self, video: torch.Tensor) -> torch.Tensor:
        if video.dtype != torch.uint8:
            return video  # already transformed (a user's own pipeline)
        lead = video.shape[:-4]
        # the uint8 batch may be stored channels-last (see the module docstring): the float copy fixes the layout
        x = video.reshape(-1, *video.shape[-4:]).to(torch.float32, memory_format=torch.contiguous_format)
        x = x.div_(255.0)
        if self.train_mode and self.backend == "fused":
            x = self._crop_flip(x)
        if self.kornia is not None:
            x = self.kornia(x)
        x = x.sub_(self.mean).div_(self.std)
        return x.reshape(*lead, *x.shape[-4:])

    def extra_repr(self) -> str:
        return f"train={self.train_mode}, backend={self.backend}, crop={self.crop_size}, hflip={self.hflip}"
