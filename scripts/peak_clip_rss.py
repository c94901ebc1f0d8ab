"""Peak RSS of one loader worker decoding one clip of a large file (the memory guard's and the decode-time
downscale's measurement; docs/benchmarks.md quotes it).

    python scripts/peak_clip_rss.py --make big.mp4 --side 8192 --frames 8   # encode the file once (libx264)
    python scripts/peak_clip_rss.py big.mp4 --decoder pyav --num-frames 8   # one clip, as a training worker

Each measurement runs in a fresh process: ``ru_maxrss`` is the process's peak, printed with the RSS after the
imports (the baseline) and what the item was (a clip's shape, or the failure's reason).
"""

from __future__ import annotations

import argparse
import resource


def make(path: str, side: int, frames: int) -> None:
    import av
    import numpy as np

    ramp = (np.arange(side, dtype=np.uint32)[None, :] + np.arange(side, dtype=np.uint32)[:, None]) // 64
    with av.open(path, "w") as c:
        s = c.add_stream("libx264", rate=30, options={"preset": "ultrafast"})
        s.width = s.height = side
        s.pix_fmt = "yuv420p"
        for i in range(frames):
            gray = ((ramp + 8 * i) % 256).astype(np.uint8)
            c.mux(s.encode(av.VideoFrame.from_ndarray(np.repeat(gray[..., None], 3, axis=2), format="rgb24")))
        c.mux(s.encode())


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("path")
    ap.add_argument("--make", action="store_true", help="encode PATH (--side, --frames) instead of measuring")
    ap.add_argument("--side", type=int, default=8192)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--decoder", default="pyav")
    ap.add_argument("--num-frames", type=int, default=8)
    ap.add_argument("--crop", type=int, default=224)
    a = ap.parse_args()
    if a.make:
        make(a.path, a.side, a.frames)
        return
    from flashvid.data import ClipSampling, VideoClipDataset, VideoSample
    from flashvid.data.transforms import ShortSideCenterCrop

    base = peak_mb()
    ds = VideoClipDataset([VideoSample(a.path, 0)], ClipSampling(a.num_frames, 1, target_fps=None),
                          ShortSideCenterCrop(a.crop, round(a.crop * 256 / 224)), "center", decoder=a.decoder)
    item = ds[0]
    what = tuple(item["video"].shape) if isinstance(item, dict) else f"refused: {item.reason}"
    print(f"{a.decoder}: peak RSS {peak_mb():.0f} MB (after imports {base:.0f} MB); item {what}")


if __name__ == "__main__":
    main()
