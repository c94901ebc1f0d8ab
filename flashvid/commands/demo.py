"""``flashvid.cli.demo_data``: the demo source under the name configs written before the source registry use
(``_target_: flashvid.cli.demo_data``); ``data=demo`` is ``source: demo`` of :mod:`flashvid.source_registry`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    from ..data import VideoClassificationData


def demo_data(root: str = "demo_data", generate: Mapping[str, Any] | None = None,
              **kwargs: Any) -> "VideoClassificationData":
    """The demo videos (written on first use) as a datamodule: ``VideoClassificationData.from_source("demo")``."""
    from ..data import VideoClassificationData

    return VideoClassificationData.from_source("demo", root=root, generate=generate, **kwargs)


demo_data.forwards_kwargs_to = "flashvid.data.VideoClassificationData.from_folders"  # type: ignore[attr-defined]
