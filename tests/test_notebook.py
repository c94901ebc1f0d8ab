"""notebooks/quickstart.ipynb runs top to bottom (small settings) against this checkout, so it cannot rot."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "quickstart.ipynb"


@pytest.mark.slow
def test_quickstart_notebook_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every cell executes in a fresh python3 kernel and the last one prints a prediction per test video."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    # the kernel inherits this environment: it must import the checkout under test, with the small settings
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("FLASHVID_QUICKSTART_SMALL", "1")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()

    def text(cell) -> str:
        return "".join(o.get("text", "") + (json.dumps(o["data"]) if o.get("data") else "")
                       for o in cell.get("outputs", []))

    code = [c for c in nb.cells if c.cell_type == "code"]
    assert (tmp_path / "quickstart_data" / "train" / "left").is_dir()  # ran in tmp_path, not in the repo
    labels = ["clockwise", "counterclockwise", "left", "right"]
    assert all(name in text(code[2]) for name in labels)  # datamodule.labels shown
    assert "test/acc" in text(code[4])
    lines = [ln for ln in text(code[5]).splitlines() if ln.strip()]
    assert len(lines) == 4  # 2 test videos in each of the two folders
    for ln in lines:
        path, label, score = ln.split()
        assert path.startswith(("test/left/", "test/clockwise/")) and label in labels and 0.0 <= float(score) <= 1.0
