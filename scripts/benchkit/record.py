"""The result of one ``bench.py`` run: its baselines, its measurements with their ratio to the baseline of their
group, what was skipped or failed; printed as it comes and rewritten to ``OUT/<subcommand>.json`` after every
measurement (a killed run keeps what finished)."""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable


class BenchError(Exception):
    """Bad input to the tool: reported as one line (``FLASHVID_DEBUG=1`` shows the traceback)."""


def machine() -> dict[str, Any]:
    """What the figures depend on: CPU (and how fast it decodes H.264, :mod:`.calibration`), GPU, library versions,
    the load when the run started."""
    import torch

    import flashvid

    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    versions: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__,
                                "flashvid": flashvid.__version__}
    for name in ("av", "torchcodec", "transformers", "lightning", "torchvision"):
        try:  # the installed version, without importing the package (transformers alone takes seconds)
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    from .calibration import h264_decode_ms_per_frame

    gpu = torch.cuda.is_available()
    return {"cpu": cpu, "arch": platform.machine(), "cpu_cores": os.cpu_count(),
            "gpu": torch.cuda.get_device_name() if gpu else None,
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()], **h264_decode_ms_per_frame(), **versions}


class Record:
    """Baselines per group (e.g. one model-only rate per model), rows with their ratio, a time budget."""

    def __init__(self, subcommand: str, args: dict[str, Any], out: Path, budget_s: float | None = None,
                 argv: list[str] | None = None):
        self.t0 = time.perf_counter()
        self.budget_s = budget_s
        self.path = out / f"{subcommand}.json"
        out.mkdir(parents=True, exist_ok=True)
        argv = sys.argv[1:] if argv is None else argv
        self.data: dict[str, Any] = {
            "subcommand": subcommand, "command": "python scripts/bench.py " + " ".join(argv),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in args.items()},
            "machine": None, "baselines": {}, "rows": [], "info": {}, "skipped": {}, "errors": {}}
        self.own: set[str] = set()  # the fields put() added

    # ---------------------------------------------------------------------------------------------- output
    def log(self, *parts: Any) -> None:
        print(f"[{time.perf_counter() - self.t0:6.1f}s]", *parts, flush=True)

    def save(self) -> None:
        self.data["elapsed_s"] = round(time.perf_counter() - self.t0, 1)
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.data, indent=1, default=str) + "\n")
        os.replace(tmp, self.path)

    def put(self, **fields: Any) -> None:
        """A subcommand's own top-level JSON fields, beside the standard ones (which they may not replace)."""
        taken = sorted(fields.keys() & {*self.data, "elapsed_s"} - self.own)
        if taken:
            raise ValueError(f"{taken[0]} is a standard field of the record")
        self.own |= fields.keys()
        self.data.update(fields)
        self.save()

    def info(self, key: str, value: Any) -> None:
        """Context that is not a measurement (footage properties, prepare reports, versions)."""
        self.data["info"][key] = value
        self.save()

    def baseline(self, name: str, value: float, unit: str, group: str = "", **extra: Any) -> None:
        """The reference the rows of ``group`` are divided by, measured in this run."""
        self.data["baselines"][group] = {"name": name, "value": value, "unit": unit, **extra}
        self.log(f"BASELINE {group + ' ' if group else ''}{name}: {value:g} {unit}")
        self.save()

    def row(self, name: str, value: float, unit: str, group: str = "", **extra: Any) -> dict[str, Any]:
        """One measurement, with its ratio to its group's baseline (``None`` when that baseline is missing)."""
        base = self.data["baselines"].get(group)
        ratio = round(value / base["value"], 3) if base and base["value"] and base["unit"] == unit else None
        row = {"name": name, "group": group, "value": value, "unit": unit, "ratio": ratio,
               "baseline": base["name"] if base else None, **extra}
        self.data["rows"].append(row)
        vs = f"  x{ratio:.3f} of {base['name']}" if ratio is not None and base else "  (no baseline)"
        self.log(f"ROW {group + ' ' if group else ''}{name}: {value:g} {unit}{vs}")
        self.save()
        return row

    # ---------------------------------------------------------------------------------------------- steps
    def step(self, name: str, fn: Callable[..., Any], *args: Any, cost_s: float = 0.0, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` unless the time budget is spent (less than ``cost_s`` left); one failing
        configuration is recorded and does not lose the others (the matrix runs on)."""
        if self.budget_s is not None:
            left = self.budget_s - (time.perf_counter() - self.t0)
            if left < cost_s:
                self.data["skipped"][name] = f"time budget: {left:.0f} s left, needs ~{cost_s:.0f} s"
                self.log("SKIP", name, self.data["skipped"][name])
                self.save()
                return None
        t = time.perf_counter()
        self.log("START", name)
        try:
            return fn(*args, **kwargs)
        except BenchError:
            raise
        except Exception as e:  # noqa: BLE001  (recorded with its traceback in the log; the matrix goes on)
            self.data["errors"][name] = f"{type(e).__name__}: {e}"
            self.log("ERROR", name, self.data["errors"][name])
            traceback.print_exc()
            return None
        finally:
            self.log("END", name, f"{time.perf_counter() - t:.1f}s")
            self.save()

    def finish(self) -> dict[str, Any]:
        """Print the table (value, ratio to the baseline) and the JSON's path; return the record."""
        self.save()
        lines = [(g, "BASELINE " + b["name"], b["value"], b["unit"], "1") for g, b in self.data["baselines"].items()]
        lines += [(r["group"], r["name"], r["value"], r["unit"], "-" if r["ratio"] is None else f"{r['ratio']:.3f}")
                  for r in self.data["rows"]]
        gw = max([len("group"), *(len(x[0]) for x in lines)])
        nw = max([len("measurement"), *(len(x[1]) for x in lines)])
        print(f"\n{'group':<{gw}}  {'measurement':<{nw}}  {'value':>10}  {'unit':<12} ratio")
        for group, name, value, unit, ratio in lines:
            print(f"{group:<{gw}}  {name:<{nw}}  {value:>10g}  {unit:<12} {ratio}")
        for what in ("skipped", "errors"):
            for k, v in self.data[what].items():
                print(f"{what}: {k}: {v}")
        print(f"wrote {self.path}", flush=True)
        return self.data
