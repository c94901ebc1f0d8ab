"""Windows/s of predict(window=...) on long videos, against the model's forward pass.

Timeline speed: windows/s of predict(window=..., stride=...) on long videos and peak memory, against the
model's forward pass on in-memory clips (windows/s with no decoding).

Writes the videos once into DATA/timeline (FFmpeg's testsrc2 pattern through PyAV's lavfi, H.264 at --crf with a
250-frame GOP, reused later), then classifies every window of each with a randomly initialised model (speed does
not depend on the weights). Peak resident memory stays flat as --seconds grows: each file is streamed through one
reader (flashvid/timeline.py).

    python scripts/bench.py timeline --width 1920 --height 1080 --seconds 300 --videos 2
    python scripts/bench.py timeline --model x3d_xs --device cuda --num-workers 8 --videos 8
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..record import Record


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", type=Path, default=Path("/tmp/flashvid-bench"), help="the videos go to DATA/timeline")
    p.add_argument("--width", type=int, default=1920)
    p.add_argument("--height", type=int, default=1080)
    p.add_argument("--seconds", type=float, default=300.0)
    p.add_argument("--fps", type=int, default=30)
    p.add_argument("--crf", type=int, default=23)
    p.add_argument("--videos", type=int, default=2)
    p.add_argument("--window", type=float, default=2.0)
    p.add_argument("--stride", type=float, default=1.0)
    p.add_argument("--model", default="tiny_r2plus1d")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--num-workers", type=int, default=0)
    p.add_argument("--decoder", default="auto")
    p.add_argument("--device", default=None, help="cpu, cuda (default: cuda when available)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")


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


def run(args: argparse.Namespace, record: Record) -> None:
    import resource
    import time

    import torch

    from flashvid import VideoClassifier
    from flashvid.data import probe
    from flashvid.data.decoding import resolve_decoder

    from ..baseline import model_only_inference
    from ..matrix import backbone_of

    if args.threads:
        torch.set_num_threads(args.threads)
    folder = args.data / "timeline"
    folder.mkdir(parents=True, exist_ok=True)
    videos = []
    t = time.perf_counter()
    for i in range(args.videos):
        path = folder / f"testsrc2_{args.width}x{args.height}_{args.seconds:g}s_{args.fps}fps_crf{args.crf}_{i}.mp4"
        if not path.exists():
            make_video(path, args.width, args.height, args.seconds, args.fps, args.crf)
        videos.append(path)
    warm_path = folder / f"testsrc2_{args.width}x{args.height}_3s_{args.fps}fps_warmup.mp4"
    if not warm_path.exists():
        make_video(warm_path, args.width, args.height, 3, args.fps, args.crf)
    info = probe(videos[0])
    record.info("videos", {"count": len(videos), "width": info.width, "height": info.height, "fps": info.fps,
                           "seconds": info.duration, "made_in_s": round(time.perf_counter() - t, 1)})
    model = VideoClassifier(backbone_of(args.model), num_classes=4, pretrained=False)
    base = model_only_inference(model, args.batch_size, 5, args.device)
    record.baseline("model_only_inference", base.pop("clips_per_s"), "windows/s", **base)
    kw = dict(window=args.window, stride=args.stride, batch_size=args.batch_size, decoder=args.decoder,
              device=args.device)
    warm = model.predict([warm_path], **kw)  # first-call costs (cuDNN, allocator) excluded
    if warm[0].get("error"):
        raise RuntimeError(warm[0]["error"])
    t = time.perf_counter()
    results = model.predict(videos, num_workers=args.num_workers, **kw)
    wall = time.perf_counter() - t
    windows = sum(len(r.get("windows", [])) for r in results)
    cfg = model.data_config
    record.row("predict(window)", round(windows / wall, 2), "windows/s", wall_s=round(wall, 2),
               files_per_s=round(len(videos) / wall, 4), windows=windows,
               sampled_frames_per_s=round(windows * cfg.num_frames / wall, 1),
               video_seconds_per_s=round(len(videos) * info.duration / wall, 2),
               peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
               decoder=resolve_decoder(args.decoder), torch_threads=torch.get_num_threads(),
               clip={"frames": cfg.num_frames, "sampling_rate": cfg.sampling_rate, "crop": cfg.crop_size},
               errors=[r["error"] for r in results if r.get("error")])
