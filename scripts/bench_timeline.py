"""Timeline speed: files/s and windows/s of ``predict(window=..., stride=...)`` on long videos, and peak memory.

    python scripts/bench_timeline.py --out bench_timeline --width 1920 --height 1080 --seconds 300 --videos 2
    python scripts/bench_timeline.py --out bench_timeline --backbone x3d_xs --device cuda --num-workers 8 --videos 8

Writes the videos once into ``--out/videos`` (FFmpeg's ``testsrc2`` pattern through PyAV's lavfi, H.264 at
``--crf`` with a 250-frame GOP, reused on later runs), then classifies every window of each with a randomly
initialised ``--backbone`` (speed does not depend on the weights) and prints and writes ``--out/result.json``:
files/s, windows/s, decoded frames/s and the process's peak resident memory, which stays flat as ``--seconds``
grows because each file is streamed through one reader (see flashvid/timeline.py).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time
from datetime import datetime, timezone
from pathlib import Path

import torch


def make_video(path: Path, width: int, height: int, seconds: float, fps: int, crf: int) -> None:
    import av

    src = av.open(f"testsrc2=size={width}x{height}:rate={fps}:duration={seconds}", format="lavfi")
    tmp = path.with_suffix(".part.mp4")
    with av.open(str(tmp), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "veryfast", "crf": str(crf), "g": "250"}
        for frame in src.decode(video=0):
            for packet in stream.encode(frame.reformat(format="yuv420p")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    src.close()
    tmp.rename(path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="folder for the videos and result.json")
    p.add_argument("--width", type=int, default=1920)
    p.add_argument("--height", type=int, default=1080)
    p.add_argument("--seconds", type=float, default=300.0)
    p.add_argument("--fps", type=int, default=30)
    p.add_argument("--crf", type=int, default=23)
    p.add_argument("--videos", type=int, default=2)
    p.add_argument("--window", type=float, default=2.0)
    p.add_argument("--stride", type=float, default=1.0)
    p.add_argument("--backbone", default="tiny_r2plus1d")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--num-workers", type=int, default=0)
    p.add_argument("--decoder", default="auto")
    p.add_argument("--device", default=None, help="cpu, cuda (default: cuda when available)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from flashvid import VideoClassifier
    from flashvid.data import probe
    from flashvid.data.decoding import resolve_decoder

    folder = args.out / "videos"
    folder.mkdir(parents=True, exist_ok=True)
    videos = []
    t = time.perf_counter()
    for i in range(args.videos):
        path = folder / f"testsrc2_{args.width}x{args.height}_{args.seconds:g}s_{args.fps}fps_{i}.mp4"
        if not path.exists():
            make_video(path, args.width, args.height, args.seconds, args.fps, args.crf)
        videos.append(path)
    made = time.perf_counter() - t
    info = probe(videos[0])
    warm_path = folder / f"testsrc2_{args.width}x{args.height}_3s_{args.fps}fps_warmup.mp4"
    if not warm_path.exists():
        make_video(warm_path, args.width, args.height, 3, args.fps, args.crf)

    model = VideoClassifier(args.backbone, num_classes=4, pretrained=False)
    warm = model.predict([warm_path], window=args.window, stride=args.stride, batch_size=args.batch_size,
                         decoder=args.decoder, device=args.device)  # first-call costs (cuDNN, allocator) excluded
    assert not warm[0].get("error"), warm[0]
    t = time.perf_counter()
    results = model.predict(videos, window=args.window, stride=args.stride, batch_size=args.batch_size,
                            num_workers=args.num_workers, decoder=args.decoder, device=args.device)
    wall = time.perf_counter() - t
    errors = [r for r in results if r.get("error")]
    windows = sum(len(r.get("windows", [])) for r in results)
    cfg = model.data_config
    frames_per_window = cfg.num_frames
    result = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": __import__("os").cpu_count(),
                    "torch_threads": torch.get_num_threads(),
                    "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None},
        "videos": {"count": len(videos), "width": info.width, "height": info.height, "fps": info.fps,
                   "seconds": info.duration, "made_in_s": round(made, 1)},
        "settings": {"backbone": args.backbone, "window": args.window, "stride": args.stride,
                     "batch_size": args.batch_size, "num_workers": args.num_workers,
                     "decoder": resolve_decoder(args.decoder), "device": str(args.device or "auto"),
                     "clip": {"frames": cfg.num_frames, "sampling_rate": cfg.sampling_rate, "crop": cfg.crop_size}},
        "wall_s": round(wall, 2), "files_per_s": round(len(videos) / wall, 4),
        "windows": windows, "windows_per_s": round(windows / wall, 2),
        "sampled_frames_per_s": round(windows * frames_per_window / wall, 1),
        "video_seconds_per_s": round(len(videos) * info.duration / wall, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "errors": [r["error"] for r in errors],
    }
    (args.out / "result.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
