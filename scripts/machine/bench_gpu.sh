#!/usr/bin/env bash
# The GPU benchmark suite in one device call: the tutorial's pipeline and the model ceiling (../shared/bench,
# copied next to the repo as .bench/ for the device tool) beside scripts/bench.py's runs, each of which measures
# its own model-only baseline in the same process.
# Usage on the GPU machine, from the repo root:  source scripts/machine/device_env.sh; OUT=/tmp/out BENCH=.bench \
#   bash scripts/machine/bench_gpu.sh       (device tool: carry .whl and .bench)
set -u
BENCH=${BENCH:-../shared/bench}
OUT=${OUT:-bench_out}
mkdir -p "$OUT"
[ -d /tmp/ucf ] || python3 "$BENCH/make_synth_ucf.py" /tmp/ucf >/dev/null
keep() { grep -E '^(\[.*(BASELINE|ROW|ERROR|SKIP))|^RESULT|Error|Traceback' -A2 | cut -c1-600; }
B="python3 scripts/bench.py"
UCF="--sets /tmp/ucf/train"
# the tutorial as written and tuned, and the model ceiling: same call
timeout 150 python3 "$BENCH/seed_pipeline.py" /tmp/ucf 30 0 | keep | tee "$OUT/seed_as_written.txt"
timeout 120 python3 "$BENCH/seed_pipeline.py" /tmp/ucf 80 15 bf16 | keep | tee "$OUT/seed_tuned.txt"
timeout 200 python3 "$BENCH/model_ceiling.py" | keep | tee "$OUT/ceiling.txt"
# flashvid training, end to end against model-only: VideoMAE-base (compiled), X3D-S/M
$B train --out "$OUT/train" $UCF --model videomae_base,x3d_s,x3d_m --steps 60 --warmup 20 2>&1 | keep
$B augment --out "$OUT" 2>&1 | keep
timeout 200 $B predict --out "$OUT" $UCF --model videomae_base --pipeline --pipeline-limit 120 2>&1 | keep
