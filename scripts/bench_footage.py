"""Real-footage benchmark matrix (issue 9) in one call: UCF-shaped 320x240 XVID vs 720p/1080p long-GOP H.264,
raw vs ``flashvid prepare``d vs ``clips_per_video=2`` vs the PyAV non-reference skip, end to end vs model-only, for
VideoMAE-base (compiled) and X3D-M; plus prepare's files/s, where the time goes per clip (decode, resize), the
seed tutorial's pipeline measured in the same call, and predict on the 1080p files.

Everything runs in this one process (one compile cache, one set of generated files) in priority order under a
time budget; the JSON is rewritten after every step, so a kill still leaves every finished result.

GPU machine (repo root, after ``source scripts/device_env.sh``; ``.bench`` = a copy of ../shared/bench):

    python scripts/bench_footage.py --out OUT --bench .bench 2>&1 | tee OUT/footage.log

CPU smoke test (tiny model, toy sizes): ``python scripts/bench_footage.py --out /tmp/fb --toy``
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_train, make_synth_footage

import torch  # noqa: E402
from bench_train import StepClock  # noqa: E402  (scripts/bench_train.py)

import flashvid  # noqa: E402
from flashvid import Trainer, VideoClassificationData, VideoClassifier  # noqa: E402
from flashvid.data import decoding  # noqa: E402

T0 = time.perf_counter()
RESULT: dict[str, Any] = {"steps": {}, "skipped": {}, "errors": {}}


def log(*a: Any) -> None:
    print(f"[{time.perf_counter() - T0:6.1f}s]", *a, flush=True)


def save(out: Path) -> None:
    RESULT["elapsed_s"] = round(time.perf_counter() - T0, 1)
    tmp = out / "footage.json.tmp"
    tmp.write_text(json.dumps(RESULT, indent=1, default=str))
    os.replace(tmp, out / "footage.json")


def step(name: str, fn: Callable[[], Any], out: Path, budget: float, cost: float = 0.0) -> Any:
    """Run one measurement unless the budget is spent; record its result, or its error, and save."""
    left = budget - (time.perf_counter() - T0)
    if left < cost:
        RESULT["skipped"][name] = f"time budget: {left:.0f} s left, needs ~{cost:.0f} s"
        log("SKIP", name, RESULT["skipped"][name])
        save(out)
        return None
    t = time.perf_counter()
    log("START", name)
    try:
        res = fn()
        RESULT["steps"][name] = res
        log("RESULT", name, json.dumps(res, default=str)[:400])
    except Exception as e:  # noqa: BLE001  (one failing configuration must not lose the others)
        RESULT["errors"][name] = f"{type(e).__name__}: {e}"
        log("ERROR", name, RESULT["errors"][name])
        traceback.print_exc()
        res = None
    log("END", name, f"{time.perf_counter() - t:.1f}s")
    save(out)
    return res


# ---------------------------------------------------------------------------------------------------- data
def make_data(args: argparse.Namespace) -> dict[str, Any]:
    import make_synth_footage as msf

    d = Path(args.data)
    sets = set(args.sets.split(","))
    info: dict[str, Any] = {}
    t = time.perf_counter()
    ucf = d / "ucf"
    if "ucf" in sets and not (ucf / "train").is_dir():
        shared = Path(args.bench) / "make_synth_ucf.py"
        try:
            import cv2  # noqa: F401

            if args.toy:
                raise ImportError("toy run")
            subprocess.run([sys.executable, str(shared), str(ucf)], check=True, stdout=subprocess.DEVNULL)
            info["ucf_source"] = "make_synth_ucf.py (shared/bench)"
        except (ImportError, OSError, subprocess.CalledProcessError) as e:
            # no OpenCV or no shared script: the same shape (320x240 MPEG-4 part 2 AVI, 25 fps, GOP 12) via PyAV
            shutil.rmtree(ucf, ignore_errors=True)
            msf.make(str(ucf), args.ucf_per_class, 10, 320, 240, 25, 6, 12, codec="mpeg4")
            info["ucf_source"] = f"make_synth_footage.py --codec mpeg4 ({type(e).__name__}: {e})"
    info["ucf_s"] = round(time.perf_counter() - t, 1)
    for name, h, per, classes, secs in (("720p", 720, args.per_class_720, args.classes, args.seconds),
                                        ("1080p", 1080, args.per_class_1080, args.classes, args.seconds)):
        if name not in sets:
            continue
        t = time.perf_counter()
        msf.make(str(d / name), per, classes, None, h, 30, secs)
        files = sorted((d / name / "train").rglob("*.mp4"))
        info[name] = {"files": len(files), "mb": round(sum(f.stat().st_size for f in files) / 1e6, 1),
                      "make_s": round(time.perf_counter() - t, 1), "seconds_each": secs}
    if "real720" in sets and args.real:
        info["real720"] = make_real(args)
    return info


def make_real(args: argparse.Namespace, copies: int = 30) -> dict[str, Any]:
    """``copies`` files of real 720p footage (the >= 720p H.264 clips under ``--real``, e.g. Kinetics clips from
    ../shared/realclips, each copied several times): the synthetic files' sensor noise costs more bits per frame
    than camera footage, so both are measured."""
    src = []
    for f in sorted(Path(args.real).rglob("*.mp4")):
        with decoding.open_container(f) as c:
            cc = c.streams.video[0].codec_context if c.streams.video else None
            if cc is not None and cc.name == "h264" and min(cc.width, cc.height) >= 720:
                src.append(f)
    if not src:
        raise RuntimeError(f"no >= 720p H.264 .mp4 under {args.real}")
    out = Path(args.data) / "real720" / "train"
    for i in range(copies):
        f = src[i % len(src)]
        dst = out / f"c{i % 2}" / f"r{i:02d}_{f.name}"
        dst.parent.mkdir(parents=True, exist_ok=True)
        if not dst.exists():
            shutil.copyfile(f, dst)
    return {"files": copies, "sources": [f.name for f in src],
            "mb_per_10s": round(statistics.mean(f.stat().st_size for f in src) / 1e6, 2)}


def run_prepare(args: argparse.Namespace, name: str, suffix: str = "_prepared", **kw: Any) -> dict[str, Any]:
    from flashvid.data.prepare import prepare

    src = Path(args.data) / name
    out = Path(args.data) / f"{name}{suffix}"
    r = prepare(out, train_folder=src / "train", workers=args.prepare_workers, progress=False, **kw)
    res = {k: v for k, v in r.to_dict().items() if k not in ("files", "data_options")}
    conv = [f for f in r.files if f["action"] == "converted"]
    if conv:
        res["per_file_s_median"] = round(statistics.median(f["seconds"] for f in conv), 3)
        res["out_size"] = f"{conv[0]['out']['width']}x{conv[0]['out']['height']}"
        res["out_fps"] = conv[0]["out"]["fps"]
    res["workers"] = args.prepare_workers or os.cpu_count()
    return res


# ------------------------------------------------------------------------------------------ where the time goes
def profile(args: argparse.Namespace, name: str, n: int) -> dict[str, Any]:
    """Per-clip CPU cost in one process and one thread: open, decode the clip's frames, resize+crop (train)."""
    from flashvid.data import ClipSampling, RandomShortSideCrop, open_video
    from flashvid.data.sources import list_videos

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    files = list_videos(Path(args.data) / name / "train")
    rng = random.Random(0)
    picks = [rng.choice(files) for _ in range(n)]
    sampling = ClipSampling(16, 4)
    crop = RandomShortSideCrop(256, 256, 256)
    out: dict[str, Any] = {}
    decoders = ["pyav", "pyav_skip"] + (["torchcodec"] if decoding.torchcodec_status()[0] else [])
    for dec in decoders:
        decoding.PYAV_SKIP_NONREF = dec == "pyav_skip"
        opens, decodes, resizes = [], [], []
        for i, f in enumerate(picks):
            t0 = time.perf_counter()
            r = open_video(f, "pyav" if dec.startswith("pyav") else dec)
            t1 = time.perf_counter()
            start = random.Random(i).uniform(0, max(r.info.num_frames - sampling.span(r.info.fps), 0))
            frames = r.frames_at(sampling.indices(start, r.info.fps, r.info.num_frames))
            t2 = time.perf_counter()
            crop(frames)
            t3 = time.perf_counter()
            r.close()
            opens.append(t1 - t0)
            decodes.append(t2 - t1)
            resizes.append(t3 - t2)
        out[dec] = {"open_ms": round(1e3 * statistics.median(opens), 1),
                    "decode_ms": round(1e3 * statistics.median(decodes), 1),
                    "decode_ms_mean": round(1e3 * statistics.mean(decodes), 1),
                    "resize_crop_ms": round(1e3 * statistics.median(resizes), 1), "clips": n}
    decoding.PYAV_SKIP_NONREF = True
    torch.set_num_threads(threads)
    return out


def loader_only(args: argparse.Namespace, data: str, backbone: str, clips_per_video: int = 1,
                keyframe_aligned: bool = False, decoder: str = "auto") -> dict[str, Any]:
    """What the training loader alone feeds (clips/s, no model, no GPU): the ceiling end to end can reach on this
    data, so a shortfall end to end is told apart from one in decoding."""
    from flashvid.models import get_backbone_spec

    clips = args.batch_size
    videos = clips // clips_per_video
    dm = VideoClassificationData.from_folders(train_folder=Path(args.data) / data / "train", batch_size=videos,
                                              num_workers=args.workers, clips_per_video=clips_per_video,
                                              keyframe_aligned=keyframe_aligned, decoder=decoder)
    workers = dm.num_workers
    warm, timed = workers + 1, max(3 * workers, 12)
    n = len(dm.samples["train"])
    dm.samples["train"] = dm.samples["train"] * max(1, math.ceil((warm + timed + 2) * videos / n))
    dm.configure_from_model(get_backbone_spec(backbone).data)
    dm.setup("fit")
    it = iter(dm.train_dataloader())
    for _ in range(warm):
        next(it)
    t, got = time.perf_counter(), 0
    for i in range(timed):
        got += next(it)["video"].shape[0]
        if i >= 2 * workers and time.perf_counter() - t > min(args.max_timed_s, 12):
            break
    dt = time.perf_counter() - t
    del it
    return {"clips_per_s": round(got / dt, 1), "batches": i + 1, "s": round(dt, 1), "workers": workers,
            "clips_per_video": clips_per_video, "keyframe_aligned": keyframe_aligned, "backbone": backbone,
            "decoder": decoder}


def _decode_whole(path: str) -> int:
    with decoding.open_container(path) as c:
        s = c.streams.video[0]
        s.thread_type, s.thread_count = "SLICE", 1
        return sum(1 for _ in c.decode(s))


def decode_all(args: argparse.Namespace, name: str) -> dict[str, Any]:
    """Every file decoded once, whole, one process per core (PyAV, one thread): the ceiling of any re-encode."""
    from multiprocessing import get_context

    from flashvid.data.sources import list_videos

    files = list_videos(Path(args.data) / name / "train")
    t = time.perf_counter()
    with get_context("fork").Pool(args.prepare_workers or os.cpu_count()) as pool:
        frames = sum(pool.map(_decode_whole, files, chunksize=1))
    dt = time.perf_counter() - t
    return {"files": len(files), "files_per_s": round(len(files) / dt, 2), "frames_per_s": round(frames / dt),
            "s": round(dt, 2)}


# ---------------------------------------------------------------------------------------------------- training
class StopAfter(StepClock):
    """bench_train's per-step clock, which also ends the run once the timed part has lasted long enough, so slow
    configurations cost a bounded time."""

    def __init__(self, warmup: int, min_timed: int, max_timed_s: float):
        super().__init__()
        self.warmup, self.min_timed, self.max_timed_s = warmup, min_timed, max_timed_s

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        timed = len(self.ends) - 1 - self.warmup
        if timed >= self.min_timed and self.ends[-1] - self.ends[self.warmup] > self.max_timed_s:
            trainer.should_stop = True

    def summary(self, clips_per_step: int) -> dict[str, Any]:  # type: ignore[override]
        if len(self.ends) - self.warmup < 2:
            return {"steps_timed": 0}
        return {**super().summary(clips_per_step, self.warmup),
                "warmup_s": round(self.ends[self.warmup] - self.starts[0], 1)}


MODELS: dict[str, VideoClassifier] = {}


def train(args: argparse.Namespace, backbone: str, data: str | None, *, clips_per_video: int = 1,
          decoder: str = "auto", skip_nonref: bool = True, keyframe_aligned: bool = False,
          decode_threads: int = 1, workers: int | None = None) -> dict[str, Any]:
    """One training measurement; ``data=None`` is model-only (in-memory uint8 clips of the same shape).

    One model per backbone serves every configuration, so VideoMAE compiles once (same batch shape each time).
    A data-bound loader delivers batches in rounds (each worker builds a whole batch): warm-up covers the first
    round and the timed part at least one more, so the rate is the steady one.
    """
    from bench_train import InMemoryData

    decoding.PYAV_SKIP_NONREF = skip_nonref  # forked loader workers inherit it
    clips = args.batch_size
    videos = clips // clips_per_video  # the batch holds clips_per_video x the videos: same clips per step
    # model-only takes its labels from any generated set (its clips are in memory)
    made = [n for n in ("ucf", "720p", "1080p", "real720") if (Path(args.data) / n / "train").is_dir()]
    root = Path(args.data) / (data or made[0]) / "train"
    cls = InMemoryData if data is None else VideoClassificationData
    dm = cls.from_folders(train_folder=root, batch_size=videos, num_workers=workers or args.workers, decoder=decoder,
                          clips_per_video=clips_per_video, keyframe_aligned=keyframe_aligned,
                          decode_threads=decode_threads)
    workers = dm.num_workers
    warmup = max(args.warmup, workers + 1) if data else args.warmup
    min_timed = max(args.min_timed, workers) if data else args.min_timed
    steps = warmup + max(args.steps, min_timed)
    n = len(dm.samples["train"])
    dm.samples["train"] = dm.samples["train"] * max(1, math.ceil((steps + 2) * videos / n))  # one epoch, no restart
    compile_ = args.compile and backbone.startswith("videomae")
    if backbone not in MODELS:
        MODELS[backbone] = VideoClassifier(backbone, labels=[str(i) for i in range(max(16, len(dm.labels)))],
                                           learning_rate=1e-4, compile=compile_)
    model = MODELS[backbone]
    clock = StopAfter(warmup, min_timed, args.max_timed_s)
    trainer = Trainer(accelerator=args.accelerator, devices=1, precision=args.precision, max_steps=steps,
                      limit_val_batches=0, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, callbacks=[clock])
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    trainer.fit(model, datamodule=dm)
    res = clock.summary(clips)
    res.update(wall_s=round(time.perf_counter() - t, 1), backbone=backbone, data=data or "in-memory",
               batch_clips=clips, batch_videos=videos, clips_per_video=clips_per_video, compile=compile_,
               decoder=decoding.resolve_decoder(decoder) if data else None, skip_nonref=skip_nonref,
               workers=workers, warmup_steps=warmup, keyframe_aligned=keyframe_aligned,
               decode_threads=decode_threads)
    if torch.cuda.is_available():
        res["peak_mem_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    decoding.PYAV_SKIP_NONREF = True
    del trainer, dm
    return res


# ---------------------------------------------------------------------------------------------------- baselines
def seed_baseline(args: argparse.Namespace) -> dict[str, Any]:
    """The HF tutorial's pipeline as written (shared/bench/seed_pipeline.py), same machine, same call."""
    cmd = [sys.executable, str(Path(args.bench) / "seed_pipeline.py"), str(Path(args.data) / "ucf"),
           str(args.seed_steps), "0"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=args.seed_timeout)
    for line in p.stdout.splitlines():
        if line.startswith("RESULT"):
            return json.loads(line[len("RESULT"):])
    raise RuntimeError(f"no RESULT line (exit {p.returncode}): {(p.stderr or p.stdout)[-600:]}")


def make_long(args: argparse.Namespace, name: str = "1080p", files: int = 10, repeats: int = 30) -> dict[str, Any]:
    """``files`` long videos (5 min of 1080p) made by muxing a 10 s file ``repeats`` times end to end (no encode:
    the same packets with shifted timestamps; every repeat starts on a keyframe, so GOPs stay <= 250 frames)."""
    import av

    src = sorted((Path(args.data) / name / "train").rglob("*.mp4"))[:files]
    out_dir = Path(args.data) / f"{name}_long" / "train"
    t = time.perf_counter()
    for i, f in enumerate(src):
        dst = out_dir / f"c{i % 2}" / f"long_{i:02d}.mp4"
        dst.parent.mkdir(parents=True, exist_ok=True)
        with av.open(str(f)) as inp, av.open(str(dst), "w") as outp:
            ist = inp.streams.video[0]
            ost = outp.add_stream_from_template(ist)
            packets = [p for p in inp.demux(ist) if p.size]
            span = max(p.pts for p in packets) + (packets[1].pts - packets[0].pts if len(packets) > 1 else 1)
            for r in range(repeats):
                for p in packets:
                    p.pts = p.pts + span if r else p.pts
                    p.dts = (p.dts + span) if (r and p.dts is not None) else p.dts
                    p.stream = ost
                    outp.mux(p)
    made = sorted(out_dir.rglob("*.mp4"))
    with av.open(str(made[0])) as c:
        seconds = float(c.duration / 1e6) if c.duration else None
    return {"files": len(made), "seconds_each": seconds, "mb_each": round(made[0].stat().st_size / 1e6, 1),
            "make_s": round(time.perf_counter() - t, 1)}


def predict_folder(args: argparse.Namespace, name: str) -> dict[str, Any]:
    """``predict`` (one centre clip per file) on a folder, after one warm-up pass (weights on the GPU, page
    cache). A file's cost is its open plus the seek and decode of one clip (the lead-in from the keyframe before
    it), not its length."""
    if "predict" not in MODELS:
        MODELS["predict"] = VideoClassifier(args.predict_backbone, labels=["a", "b"])
    model = MODELS["predict"]
    folder = Path(args.data) / name / "train"
    kw = dict(batch_size=8, num_workers=args.workers if args.workers is not None else 10)
    model.predict(folder, **kw)
    t = time.perf_counter()
    res = model.predict(folder, **kw)
    dt = time.perf_counter() - t
    return {"files": len(res), "files_per_s": round(len(res) / dt, 2), "s": round(dt, 2),
            "errors": sum(r.get("error") is not None for r in res), "backbone": args.predict_backbone}


def predict_1080p(args: argparse.Namespace) -> dict[str, Any]:
    """``predict`` on the 10 s 1080p files, raw and prepared."""
    return {"backbone": args.predict_backbone, "seconds_each": args.seconds,
            **{name: predict_folder(args, name) for name in ("1080p", "1080p_prepared")}}


# ---------------------------------------------------------------------------------------------------- main
def ratios() -> dict[str, Any]:
    s = RESULT["steps"]
    out: dict[str, Any] = {}
    for bb in RESULT["backbones"]:
        mo = (s.get(f"{bb}/model_only") or {}).get("clips_per_s")
        if not mo:
            continue
        for k, v in s.items():
            if k.startswith(f"{bb}/") and k != f"{bb}/model_only" and isinstance(v, dict) and v.get("clips_per_s"):
                out[k] = {"clips_per_s": v["clips_per_s"], "vs_model_only": round(v["clips_per_s"] / mo, 3),
                          "data_wait_fraction": v.get("data_wait_fraction")}
    seed = (s.get("seed_as_written") or {}).get("clips_per_s")
    e2e = (s.get(f"{RESULT['backbones'][0]}/ucf") or {}).get("clips_per_s")
    if seed and e2e:
        out["ucf_e2e_vs_seed_as_written"] = round(e2e / seed, 2)
    return out


def _wanted(pattern: str, name: str) -> bool:
    """``--only`` entries match a part of a step name, or the whole name when they end in ``$``."""
    return name == pattern[:-1] if pattern.endswith("$") else pattern in name


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="directory for footage.json")
    p.add_argument("--bench", default="../shared/bench", help="the shared bench scripts (seed_pipeline.py...)")
    p.add_argument("--data", default="/tmp/fvbench", help="generated videos (kept between calls)")
    p.add_argument("--budget-s", type=float, default=500,
                   help="start no step after this many seconds (default fits a 600 s device call with set-up)")
    p.add_argument("--backbones", default="videomae_base,x3d_m")
    p.add_argument("--batch-size", type=int, default=32, help="clips per step (videos x clips_per_video)")
    p.add_argument("--warmup", type=int, default=6)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--min-timed", type=int, default=6)
    p.add_argument("--max-timed-s", type=float, default=20)
    p.add_argument("--workers", type=int, default=None, help="loader workers (default: flashvid's)")
    p.add_argument("--prepare-workers", type=int, default=None)
    p.add_argument("--classes", type=int, default=6)
    p.add_argument("--per-class-720", type=int, default=5)
    p.add_argument("--per-class-1080", type=int, default=4)
    p.add_argument("--ucf-per-class", type=int, default=30)
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--seed-steps", type=int, default=20)
    p.add_argument("--seed-timeout", type=float, default=150)
    p.add_argument("--predict-backbone", default="videomae_base")
    p.add_argument("--profile-clips", type=int, default=6)
    p.add_argument("--only", default=None, help="parts of step names to run, e.g. x3d_m,cpv2 (trailing $: whole name)")
    p.add_argument("--toy", action="store_true", help="CPU smoke test: tiny model and files, a few steps")
    p.add_argument("--sets", default="ucf,720p,1080p,real720", help="data sets to generate (skip what no step uses)")
    p.add_argument("--real", default=None, help="folder of real clips; its >= 720p H.264 files make the real720 set")
    args = p.parse_args()
    gpu = torch.cuda.is_available()
    args.accelerator, args.precision, args.compile = ("gpu", "bf16-mixed", True) if gpu else ("cpu", "32-true", False)
    if args.toy:
        args.backbones, args.predict_backbone = "tiny_r2plus1d", "tiny_r2plus1d"
        args.batch_size, args.warmup, args.steps, args.min_timed, args.max_timed_s = 4, 1, 3, 2, 10
        args.classes, args.per_class_720, args.per_class_1080, args.ucf_per_class = 2, 2, 1, 2
        args.seconds, args.profile_clips = 3, 2
        args.workers = args.workers if args.workers is not None else 1
        args.seed_steps = 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    import av

    RESULT.update(args=vars(args), backbones=args.backbones.split(","), flashvid=flashvid.__version__,
                  torch=torch.__version__, av=av.__version__, python=platform.python_version(),
                  cpu_cores=os.cpu_count(), gpu=torch.cuda.get_device_name() if gpu else None,
                  date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                  decoder_auto=decoding.resolve_decoder("auto"), torchcodec=decoding.torchcodec_status()[1])
    B = args.budget_s
    step("data", lambda: make_data(args), out, B)
    bbs = RESULT["backbones"]
    v, x = bbs[0], (bbs[1] if len(bbs) > 1 else None)
    pre: list[tuple[str, Callable[[], Any], float]] = [
        # prepare's defaults, sized for the first backbone (VideoMAE 16x4 at 30 fps: short side 256, 15 fps)
        ("prepare/720p", lambda: run_prepare(args, "720p", backbone=v), 0),
        ("prepare/1080p", lambda: run_prepare(args, "1080p", backbone=v), 0),
        ("prepare/ucf", lambda: run_prepare(args, "ucf", backbone=v), 0),  # small, short GOP: kept as is
        ("prepare/720p_keepfps", lambda: run_prepare(args, "720p", "_prepared_keepfps", backbone=v, max_fps=None), 0),
        ("prepare/720p_fps7.5", lambda: run_prepare(args, "720p", "_prepared_fps7.5", backbone=v, max_fps=7.5), 0),
        ("prepare/real720", lambda: run_prepare(args, "real720", backbone=v), 0),
        ("decode_all/720p", lambda: decode_all(args, "720p"), 0),
        ("decode_all/1080p", lambda: decode_all(args, "1080p"), 0),
    ]
    for name in ("ucf", "720p", "720p_prepared", "720p_prepared_keepfps", "1080p", "1080p_prepared", "real720",
                 "real720_prepared"):
        pre.append((f"profile/{name}", lambda n=name: profile(args, n, args.profile_clips), 20))
    loaders = [("ucf", 1, False, "auto"), ("720p_prepared", 1, False, "auto"),
               ("720p_prepared", 1, False, "torchcodec"), ("720p_prepared_keepfps", 1, False, "auto"),
               ("1080p_prepared", 1, False, "auto"), ("720p_prepared_fps7.5", 1, False, "auto"),
               ("720p", 1, False, "auto"), ("720p", 1, False, "torchcodec"), ("720p", 2, True, "auto"),
               ("real720", 1, False, "auto"), ("real720_prepared", 1, False, "auto")]
    for data, cpv, kfa, dec in loaders:
        name = f"loader/{data}" + (f"_cpv{cpv}" if cpv > 1 else "") + ("_kfa" if kfa else "") + \
            ("" if dec == "auto" else f"_{dec}")
        pre.append((name, lambda d=data, c=cpv, k=kfa, dd=dec: loader_only(args, d, v, c, k, dd), 25))
    for name, fn, cost in pre:
        if not args.only or any(_wanted(w, name) for w in args.only.split(",")):
            step(name, fn, out, B, cost)
        else:
            RESULT["skipped"][name] = f"--only {args.only}"
    plan: list[tuple[str, Callable[[], Any], float]] = [  # the targets first
        (f"{v}/model_only", lambda: train(args, v, None), 60),
        (f"{v}/ucf", lambda: train(args, v, "ucf"), 30),
        (f"{v}/720p_prepared", lambda: train(args, v, "720p_prepared"), 20),
        (f"{v}/1080p_prepared", lambda: train(args, v, "1080p_prepared"), 20),
        (f"{v}/real720_prepared", lambda: train(args, v, "real720_prepared"), 20),
        (f"{v}/real720", lambda: train(args, v, "real720"), 40),
        (f"{v}/real720_kfa_cpv2", lambda: train(args, v, "real720", keyframe_aligned=True, clips_per_video=2), 30),
        (f"{v}/720p_kfa_cpv2", lambda: train(args, v, "720p", keyframe_aligned=True, clips_per_video=2), 30),
        (f"{v}/720p_prepared_fps7.5", lambda: train(args, v, "720p_prepared_fps7.5"), 20),
        (f"{v}/720p_prepared_keepfps", lambda: train(args, v, "720p_prepared_keepfps"), 20),
        (f"{v}/720p_kfa", lambda: train(args, v, "720p", keyframe_aligned=True), 30),
        (f"{v}/720p", lambda: train(args, v, "720p"), 40),
        (f"{v}/720p_torchcodec", lambda: train(args, v, "720p", decoder="torchcodec"), 40),
        (f"{v}/720p_pyav_noskip", lambda: train(args, v, "720p", decoder="pyav", skip_nonref=False), 40),
        (f"{v}/720p_cpv2", lambda: train(args, v, "720p", clips_per_video=2), 30),
        (f"{v}/1080p", lambda: train(args, v, "1080p"), 60),
        (f"{v}/ucf_w12", lambda: train(args, v, "ucf", workers=12), 30),
        (f"{v}/720p_prepared_w12", lambda: train(args, v, "720p_prepared", workers=12), 20),
        (f"{v}/1080p_prepared_w12", lambda: train(args, v, "1080p_prepared", workers=12), 20),
        (f"{v}/720p_kfa_cpv2_w12", lambda: train(args, v, "720p", keyframe_aligned=True, clips_per_video=2,
                                                 workers=12), 30),
        ("long/make", lambda: make_long(args), 10),
        ("long/predict_raw", lambda: predict_folder(args, "1080p_long"), 20),
        ("long/prepare", lambda: run_prepare(args, "1080p_long", backbone=v), 60),
        ("long/predict_prepared", lambda: predict_folder(args, "1080p_long_prepared"), 10),
    ]
    if args.seed_steps:
        plan.insert(2, ("seed_as_written", lambda: seed_baseline(args), 40))  # the baseline early in the call
    else:
        RESULT["skipped"]["seed_as_written"] = "--seed-steps 0 (toy run)"
    plan += [
        (f"{v}/720p_prepared_cpv2", lambda: train(args, v, "720p_prepared", clips_per_video=2), 20),
        (f"{v}/720p_prepared_keepfps_cpv2", lambda: train(args, v, "720p_prepared_keepfps", clips_per_video=2), 20),
        ("predict_1080p", lambda: predict_1080p(args), 20),
    ]
    if x:
        plan += [(f"{x}/model_only", lambda: train(args, x, None), 20),
                 (f"{x}/ucf", lambda: train(args, x, "ucf"), 20),
                 (f"{x}/720p_prepared", lambda: train(args, x, "720p_prepared"), 20),
                 (f"{x}/1080p_prepared", lambda: train(args, x, "1080p_prepared"), 20),
                 (f"{x}/720p", lambda: train(args, x, "720p"), 40)]
    plan += [(f"{v}/1080p_prepared_cpv2", lambda: train(args, v, "1080p_prepared", clips_per_video=2), 20),
             (f"{v}/720p_pyav_skip_cpv4", lambda: train(args, v, "720p", decoder="pyav", clips_per_video=4), 30),
             (f"{v}/1080p_threads2", lambda: train(args, v, "1080p", decode_threads=2), 60),
             (f"{v}/1080p_pyav_skip", lambda: train(args, v, "1080p", decoder="pyav"), 60)]
    if args.only:  # a second call for what the budget cut (data and prepared copies are reused when still there)
        wanted = args.only.split(",")
        for name, _, _ in plan:
            if not any(_wanted(w, name) for w in wanted):
                RESULT["skipped"][name] = f"--only {args.only}"
        plan = [p for p in plan if any(_wanted(w, p[0]) for w in wanted)]
    for name, fn, cost in plan:
        step(name, fn, out, B, cost)
        RESULT["ratios"] = ratios()
        save(out)
    RESULT["ratios"] = ratios()  # (also when --only ran no training step)
    log("RATIOS", json.dumps(RESULT["ratios"], indent=1))
    save(out)


if __name__ == "__main__":
    main()
