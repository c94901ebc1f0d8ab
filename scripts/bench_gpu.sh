#!/usr/bin/env bash
# The GPU benchmark suite in one device call: the seed baseline and the model-only ceiling
# (from ../shared/bench, copied next to the repo as .bench/ for the device tool) beside flashvid's own runs.
# Usage on the GPU machine, from the repo root:  OUT=/tmp/out BENCH=.bench bash scripts/bench_gpu.sh
# (with the device tool: carry .whl and .bench; scripts/device_env.sh installs the wheels first).
set -u
BENCH=${BENCH:-../shared/bench}
OUT=${OUT:-bench_out}
mkdir -p "$OUT"
[ -d /tmp/ucf ] || python3 "$BENCH/make_synth_ucf.py" /tmp/ucf >/dev/null
keep() { grep -E '^(model_only|e2e|flashvid|pipeline|RESULT)|Error|Traceback' -A2 | cut -c1-600; }
T="python3 scripts/bench_train.py --root /tmp/ucf --repeat 10"
# baselines, same call
timeout 150 python3 "$BENCH/seed_pipeline.py" /tmp/ucf 30 0 | keep | tee "$OUT/seed_as_written.txt"
timeout 120 python3 "$BENCH/seed_pipeline.py" /tmp/ucf 80 15 bf16 | keep | tee "$OUT/seed_tuned.txt"
timeout 200 python3 "$BENCH/model_ceiling.py" | keep | tee "$OUT/ceiling.txt"
# flashvid: VideoMAE-base (trainer=gpu defaults + compile), X3D-S/M, memory at batch 8, activation checkpointing
$T --backbone videomae_base --batch-size 32 --steps 80 --warmup 25 --compile --out "$OUT/videomae_base_b32.json" 2>&1 | keep
$T --backbone x3d_s --batch-size 32 --steps 70 --warmup 20 --out "$OUT/x3d_s.json" 2>&1 | keep
$T --backbone x3d_m --batch-size 32 --steps 60 --warmup 20 --out "$OUT/x3d_m.json" 2>&1 | keep
$T --backbone videomae_base --batch-size 8 --steps 40 --warmup 15 --skip-e2e --out "$OUT/videomae_base_b8.json" 2>&1 | keep
$T --backbone videomae_large --batch-size 8 --steps 30 --warmup 10 --skip-e2e --out "$OUT/videomae_large_b8.json" 2>&1 | keep
$T --backbone videomae_large --batch-size 8 --steps 30 --warmup 10 --skip-e2e --activation-checkpointing \
   --out "$OUT/videomae_large_b8_ac.json" 2>&1 | keep
python3 scripts/bench_augment.py --out "$OUT/augment.json" | keep
timeout 200 python3 scripts/bench_predict.py --root /tmp/ucf --pipeline-limit 120 --out "$OUT/predict.json" 2>&1 | keep
# several GPUs (nvidia-h200-x2): one process per GPU, UCF101-sized epochs
if [ "$(nvidia-smi -L | wc -l)" -ge 2 ]; then
  D="python3 scripts/bench_train.py --root /tmp/ucf --repeat 32 --backbone videomae_base --batch-size 32 --compile --skip-model-only"
  $D --steps 230 --warmup 30 --devices 1 --out "$OUT/ddp_1gpu.json" 2>&1 | keep
  $D --steps 220 --warmup 20 --devices 2 --strategy ddp --out "$OUT/ddp_2gpu.json" 2>&1 | keep
fi
