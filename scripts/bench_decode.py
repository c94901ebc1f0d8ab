"""CPU cost of one training clip on long-GOP footage, per decoding shortcut (issue 9, item 2).

Same files, same clips (16 frames at stride 4, random starts from (seed, epoch, index)) for every variant, in one
process, one decode thread unless stated; the variants alternate per round so load on a shared machine hits them
alike. CPU time (``process_time``) is the figure (robust to other jobs); wall time is reported beside it (the only
meaningful one for the 2-thread variant).

    python scripts/make_synth_footage.py /tmp/fv720 --per-class 1 --classes 2     # 2 files, 720p, 10 s
    python scripts/bench_decode.py --root /tmp/fv720/train --out bench_decode.json
    # with UCF-shaped AVIs too (320x240 MPEG-4, 25 fps, 12-frame GOP: make_synth_footage.py --codec mpeg4)
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from flashvid.data import ClipSampling, VideoClipDataset, VideoSample  # noqa: E402
from flashvid.data import decoding  # noqa: E402
from flashvid.data.prepare import prepare  # noqa: E402
from flashvid.data.sources import list_videos  # noqa: E402
from report import report  # noqa: E402


def variants(files: list[str], prepared: list[str], avi: list[str]) -> dict[str, dict[str, Any]]:
    s = [VideoSample(f, 0) for f in files]
    p = [VideoSample(f, 0) for f in prepared]
    a = [VideoSample(f, 0) for f in avi]
    which = {"avi_pyav": dict(samples=a, decoder="pyav", skip=True),  # which reader decoder=auto should pick
             "avi_torchcodec": dict(samples=a, decoder="torchcodec", skip=False)} if a else {}
    return {**which,
        "pyav": dict(samples=s, decoder="pyav", skip=False),
        "pyav_skip_nonref": dict(samples=s, decoder="pyav", skip=True),
        "torchcodec": dict(samples=s, decoder="torchcodec", skip=False),
        "pyav_skip_2_threads": dict(samples=s, decoder="pyav", skip=True, decode_threads=2),
        "torchcodec_2_threads": dict(samples=s, decoder="torchcodec", skip=False, decode_threads=2),
        "pyav_skip_clips_per_video_2": dict(samples=s, decoder="pyav", skip=True, clips_per_video=2),
        "pyav_keyframe_aligned": dict(samples=s, decoder="pyav", skip=True, keyframe_aligned=True),
        "prepared_pyav": dict(samples=p, decoder="pyav", skip=True),
        "prepared_pyav_noskip": dict(samples=p, decoder="pyav", skip=False),
        "prepared_torchcodec": dict(samples=p, decoder="torchcodec", skip=False),
        "prepared_pyav_clips_per_video_2": dict(samples=p, decoder="pyav", skip=True, clips_per_video=2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", required=True, help="a folder of long-GOP videos (any depth)")
    ap.add_argument("--items", type=int, default=8, help="dataset items per variant per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--avi-root", default=None, help="UCF-shaped MPEG-4 AVIs to compare the two readers on too")
    ap.add_argument("--out", default=None)
    ap.add_argument("--variants", default=None, help="comma-separated variant names to run (default: all)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    files = list_videos(args.root)
    prep_dir = Path(args.root).parent / (Path(args.root).name + "_prepared")
    t = time.perf_counter()
    rep = prepare(prep_dir, train_folder=args.root, workers=1, progress=False)
    prepared = sorted(str(prep_dir / f["dst"]) for f in rep.files if f.get("dst"))
    result: dict[str, Any] = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
                              "python": platform.python_version(), "torch": torch.__version__,
                              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "files": files,
                              "prepare_s": round(time.perf_counter() - t, 2), "prepare_converted": rep.converted,
                              "clip": "16 frames, stride 4 at 30 fps", "items_per_round": args.items,
                              "rounds": args.rounds}
    if not decoding.torchcodec_status()[0]:
        result["torchcodec"] = "not available"
    with __import__("av").open(files[0]) as c:
        v = c.streams.video[0]
        result["source"] = {"size": f"{v.codec_context.width}x{v.codec_context.height}", "fps": float(v.average_rate),
                            "frames": v.frames, "keyframe_interval": decoding.keyframe_interval(files[0])}
    sampling = ClipSampling(16, 4)
    cpu: dict[str, list[float]] = {}
    wall: dict[str, list[float]] = {}
    var = variants(files, prepared, list_videos(args.avi_root) if args.avi_root else [])
    if args.variants:
        var = {k: v for k, v in var.items() if k in args.variants.split(",")}
    for r in range(args.rounds):
        for name, v in var.items():
            if "torchcodec" in name and not decoding.torchcodec_status()[0]:
                continue
            ds = VideoClipDataset(v["samples"], sampling, decoder=v["decoder"], seed=r,
                                  clips_per_video=v.get("clips_per_video", 1),
                                  keyframe_aligned=v.get("keyframe_aligned", False),
                                  decode_threads=v.get("decode_threads", 1))
            decoding.PYAV_SKIP_NONREF = v["skip"]
            n = len(v["samples"])
            c0, w0 = time.process_time(), time.perf_counter()
            for i in range(args.items):
                item = ds[(i % n, r * 1000 + i)]
                assert not hasattr(item, "reason"), item
            clips = args.items * v.get("clips_per_video", 1)
            cpu.setdefault(name, []).append(1e3 * (time.process_time() - c0) / clips)
            wall.setdefault(name, []).append(1e3 * (time.perf_counter() - w0) / clips)
    decoding.PYAV_SKIP_NONREF = True
    result["base"] = "pyav" if "pyav" in cpu else next(iter(cpu))  # plain PyAV, else the first variant run
    base = statistics.median(cpu[result["base"]])
    result["per_clip"] = {name: {"cpu_ms": round(statistics.median(cpu[name]), 1),
                                 "wall_ms": round(statistics.median(wall[name]), 1),
                                 "cpu_vs_base": round(statistics.median(cpu[name]) / base, 3)} for name in cpu}
    for name, r in result["per_clip"].items():
        print(f"{name:<34} cpu {r['cpu_ms']:8.1f} ms/clip  wall {r['wall_ms']:8.1f}  x{r['cpu_vs_base']:.2f}")
    report(result, args.out)


if __name__ == "__main__":
    main()
