"""How every benchmark script ends: one ``RESULT {json}`` line on stdout and, with ``--out``, the same JSON file."""

from __future__ import annotations

import json
from typing import Any


def report(result: dict[str, Any], out: str | None) -> None:
    print("RESULT", json.dumps(result), flush=True)
    if out:
        with open(out, "w") as f:
            json.dump(result, f, indent=2)
