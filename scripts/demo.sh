#!/usr/bin/env bash
# The demo on a fresh machine: install what is missing, write the demo videos into ./demo_data, train flashvid's
# tiny model on them (experiment=demo), test the best checkpoint, and predict the test videos.
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

step "done: checkpoints, logs and metrics in $RUN (tensorboard --logdir $RUN)"
