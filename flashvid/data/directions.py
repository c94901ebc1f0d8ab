"""Class names that a horizontal flip would make wrong.

A mirrored "swipe_left" clip shows a swipe to the right, a mirrored clockwise turn turns counterclockwise: with
such classes (Jester, Something-Something, sign language's left/right hand) a flip teaches the model the opposite
label. Up/down, forward/backward and towards/away survive a horizontal flip, so those names keep flips on.
"""

from __future__ import annotations

import re
from typing import Sequence

# words whose sense a left-right mirror swaps (lower case, after splitting names into words)
MIRRORED_WORDS = frozenset({
    "left", "right", "leftward", "leftwards", "rightward", "rightwards", "lefthand", "righthand",
    "clockwise", "counterclockwise", "anticlockwise",  # "counter-clockwise" splits into ... "clockwise"
})
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")
_WORD = re.compile(r"[a-z]+")


def words(name: str) -> list[str]:
    """The lower-case words of a class name: ``"SwipeLeft"``, ``"swipe_left"`` -> ``["swipe", "left"]``."""
    return _WORD.findall(_CAMEL.sub(" ", name).lower())


def mirrored_classes(labels: Sequence[str]) -> list[str]:
    """The class names that say left/right or a sense of rotation: a horizontal flip contradicts them."""
    return [name for name in labels if MIRRORED_WORDS.intersection(words(str(name)))]


def describe(names: Sequence[str], limit: int = 4) -> str:
    """``'swipe_left', 'swipe_right' and 3 more``: a notice names a few, not hundreds."""
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


FORCE_FLIPS = "data.augmentation.flip_directions=true"


def flips_off_notice(names: Sequence[str]) -> str:
    """The one line training prints when it turns flips off."""
    return (f"flashvid: horizontal flips off: class names {describe(names)} mean a direction that a flip reverses "
            f"(flip anyway: {FORCE_FLIPS})")


def flips_on_warning(names: Sequence[str], hflip: float) -> str:
    """The doctor's line when flips stay on (forced) although class names mean a direction."""
    return (f"horizontal flips are forced on (hflip={hflip:g}, {FORCE_FLIPS}) but class names "
            f"{describe(names)} mean a direction: a flipped clip shows the opposite one under the same label")


def flips_off_warning(names: Sequence[str]) -> str:
    """The doctor's line when training will turn flips off by itself."""
    return (f"class names {describe(names)} mean a direction that a horizontal flip reverses: training turns "
            f"flips off (data.augmentation.hflip 0; {FORCE_FLIPS} keeps them)")
