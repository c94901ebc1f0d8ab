"""How fast this host's cores decode H.264, recorded with every run's machine.

The GPU machines lent for a device call are not the same host each time, and their CPU model reads as a generic
"Intel(R) Xeon(R) Processor": decoding the same 192 files ran at 26.1-36.9 files/s on 16 cores in three calls, so a
loader-bound row means little without the host's speed beside it. A fixed clip (the same pixels and encoder settings
every time, the size of a ``flashvid prepare`` copy) is encoded in memory and decoded on one thread; the best of a
few rounds is the host's figure, ~0.3 s in all.
"""

from __future__ import annotations

import io
import time
from functools import lru_cache
from typing import Any

WIDTH, HEIGHT, FRAMES, ROUNDS = 456, 256, 48, 3


def _clip() -> bytes:
    """48 frames of moving noise and gradients, x264 superfast (a copy's preset), 5 B-frames between references."""
    import av
    import numpy as np

    rng = np.random.default_rng(0)
    noise = rng.integers(0, 64, size=(HEIGHT + FRAMES, WIDTH + FRAMES, 3), dtype=np.uint8)
    ramp = np.linspace(0, 191, WIDTH, dtype=np.uint8)[None, :, None]
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=15)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"crf": "22", "preset": "superfast", "x264-params": "keyint=15:b-adapt=0:bframes=5"}
        stream.thread_count = 1
        for i in range(FRAMES):
            frame = noise[i:i + HEIGHT, i:i + WIDTH] + ramp
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return buf.getvalue()


@lru_cache(maxsize=1)
def h264_decode_ms_per_frame() -> dict[str, Any]:
    """Milliseconds of one thread per decoded 456x256 H.264 frame (best of three), or why it could not be timed;
    measured once per process (a process that runs several benchmarks, as the tests do, pays it once)."""
    try:
        import av

        data = _clip()
        best = float("inf")
        for _ in range(ROUNDS):
            t = time.process_time()
            with av.open(io.BytesIO(data)) as container:
                stream = container.streams.video[0]
                stream.thread_count = 1
                n = sum(1 for _ in container.decode(stream))
            best = min(best, (time.process_time() - t) / max(n, 1))
        return {"h264_decode_ms_per_frame_456x256": round(best * 1e3, 3)}
    except Exception as e:  # noqa: BLE001  (a record without the figure beats no record)
        return {"h264_decode_ms_per_frame_456x256": None, "calibration_error": f"{type(e).__name__}: {e}"}
