"""flashvid's benchmark tool: ``python scripts/bench.py <subcommand> [options]``.

``python scripts/bench.py --help`` lists the subcommands, ``python scripts/bench.py <subcommand> --help`` their
options. Every subcommand measures its baseline in the same run (for training and prediction: the same model fed
from memory, no decoding), prints each result with its ratio to that baseline, and writes the JSON
``OUT/<subcommand>.json`` after every measurement, so a killed run keeps what finished. The machinery is
``scripts/benchkit/``; a subcommand is one module in ``scripts/benchkit/commands/``.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # benchkit and make_synth_footage; this checkout's flashvid

from benchkit.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
