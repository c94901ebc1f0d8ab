#!/usr/bin/env bash
# Regenerate the demo's figures in the docs from a fresh demo run: `bash scripts/demo.sh`, then copy its confusion
# matrix and timeline into docs/images/ and write docs/demo_results.json (the run's val/test figures and the
# timeline's segments), which the README's "expected range" is checked against. Run it after a change that can move
# the demo's results, and commit what it changed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-python3}
RUN=runs/demo
bash scripts/demo.sh
cp "$RUN/test/confusion_matrix.png" docs/images/demo_confusion_matrix.png
cp "$RUN"/timeline/timeline_timelines/0000_sequence.png docs/images/demo_timeline.png
"$PY" - "$RUN" <<'PY'
import json
import sys
from pathlib import Path

run = Path(sys.argv[1])
metrics = json.loads((run / "metrics.json").read_text())
test = json.loads((run / "test" / "test_metrics.json").read_text())
timeline = json.loads((run / "timeline" / "timeline.json").read_text())
segments = timeline[0]["segments"]
out = {
    "best_val_acc": metrics.get("best_val_acc"), "epochs": metrics.get("epochs"),
    "test_top1": test.get("top1"), "test_mean_class_accuracy": test.get("mean_class_accuracy"),
    "timeline_segments": [[round(s["start"], 2), round(s["end"], 2), s["label"]] for s in segments],
}
Path("docs/demo_results.json").write_text(json.dumps(out, indent=1) + "\n")
print("docs_figures:", json.dumps({k: v for k, v in out.items() if k != "timeline_segments"}))
print("docs_figures: timeline", " | ".join(f"{a:g}-{b:g}s {label}" for a, b, label in out["timeline_segments"]))
PY
echo "docs_figures: docs/images/demo_confusion_matrix.png, docs/images/demo_timeline.png, docs/demo_results.json"
