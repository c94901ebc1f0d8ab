#!/usr/bin/env bash
# The demo on a fresh machine: install what is missing, write the demo videos into ./demo_data, train flashvid's
# tiny model on them (experiment=demo), test the best checkpoint (with its report: confusion matrix, per class),
# predict the test videos, and draw the timeline of a video whose motion changes three times.
# Everything lands in ./runs/demo (replaced on every run); the videos are made once.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-python3}
RUN=runs/demo
bash scripts/setup.sh
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
step() { echo; echo "==> $*"; }

step "demo videos: ./demo_data"
"$PY" -c 'from flashvid.cli import ensure_demo_data; print(ensure_demo_data("demo_data").resolve())'

step "train: flashvid train experiment=demo  (run directory $RUN)"
rm -rf "$RUN"
"$PY" -m flashvid train experiment=demo test_after_training=false hydra.run.dir="$RUN" </dev/null

step "test: flashvid test experiment=demo ckpt_path=$RUN/checkpoints/best.ckpt"
"$PY" -m flashvid test experiment=demo ckpt_path="$RUN/checkpoints/best.ckpt" hydra.run.dir="$RUN/test" </dev/null

step "predict: flashvid predict ckpt_path=$RUN/checkpoints/best.ckpt inputs=[demo_data/test]"
"$PY" -m flashvid predict ckpt_path="$RUN/checkpoints/best.ckpt" inputs=[demo_data/test] \
    hydra.run.dir="$RUN/predict" </dev/null

step "timeline: flashvid predict ... inputs=[demo_data/sequence.mp4] window=1 stride=0.25 timeline_png=true"
"$PY" -c 'from flashvid.data.demo import make_demo_sequence as m; m("demo_data/sequence.mp4", ("left", "clockwise", "right", "counterclockwise"))'
"$PY" -m flashvid predict ckpt_path="$RUN/checkpoints/best.ckpt" inputs=[demo_data/sequence.mp4] window=1 stride=0.25 \
    timeline_png=true output="$RUN/timeline/timeline.json" hydra.run.dir="$RUN/timeline" </dev/null

step "done: checkpoints, logs, metrics and curves.png in $RUN, the test report in $RUN/test (tensorboard --logdir $RUN)"
