"""``bench.py``'s command line: the subcommands are the modules of :mod:`benchkit.commands`, found by name; the
options every subcommand has (``--out``, ``--budget-s``) are added here."""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from pathlib import Path
from types import ModuleType

from . import commands
from .record import BenchError, Record


def subcommands() -> dict[str, ModuleType]:
    """Subcommand name (the module's, ``_`` written ``-``) -> module."""
    names = sorted(m.name for m in pkgutil.iter_modules(commands.__path__) if not m.name.startswith("_"))
    return {n.replace("_", "-"): importlib.import_module(f"{commands.__name__}.{n}") for n in names}


def parser() -> argparse.ArgumentParser:
    top = sys.modules["__main__"].__doc__ if sys.modules["__main__"].__doc__ else __doc__
    p = argparse.ArgumentParser(prog="bench.py", description=top, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)
    for name, module in subcommands().items():
        doc = (module.__doc__ or name).strip()
        sp = sub.add_parser(name, help=doc.splitlines()[0], description=doc,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
        sp.add_argument("--out", type=Path, default=Path("bench_out"),
                        help=f"folder for {name}.json (default %(default)s)")
        sp.add_argument("--budget-s", type=float, default=None,
                        help="start no measurement after this many seconds (a device call's limit), default none")
        module.add_arguments(sp)
        sp.set_defaults(module=module)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    module = args.module
    options = {k: v for k, v in vars(args).items() if k != "module"}
    try:
        record = Record(args.subcommand, options, args.out, args.budget_s, argv)
        from .record import machine

        record.data["machine"] = machine()
        module.run(args, record)
        record.finish()
    except BenchError as e:
        if os.environ.get("FLASHVID_DEBUG"):
            raise
        print(f"bench.py {args.subcommand}: {e}", file=sys.stderr)
        return 2
    return 0
