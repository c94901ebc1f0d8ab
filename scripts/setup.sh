#!/usr/bin/env bash
# Install what flashvid needs, skipping whatever is already there (safe to run again and again):
#   1. FFmpeg's shared libraries (torchcodec decodes with them), from apt when they are missing;
#   2. torch 2.14.1 + torchvision 0.29.1 when torch is not installed;
#   3. flashvid itself, editable, with its dev extras (pytest, ruff, mypy...), when this checkout is not the
#      installed one or a requirement in pyproject.toml is missing.
# pip installs with the lock for this Python, constraints/py3XX.txt (the versions the test suite passed with;
# `bash scripts/machine/lock.sh` regenerates it), so a fresh machine gets the same versions tomorrow as today.
# It prints a few `setup:` lines; apt's and pip's own output goes to the log ($ROOT/.setup.log), named on failure.
# PYTHON picks the interpreter (default: python3; a virtual environment's when one is active).
# FLASHVID_TORCH_INDEX=URL takes torch and torchvision from another wheel index (a CPU-only one saves ~5 GB).
# FLASHVID_LOCK=none installs the newest allowed versions instead (scripts/machine/check_latest.sh); FLASHVID_LOCK=FILE
# another lock. FLASHVID_SETUP_LOG=FILE moves the log.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
PY=${PYTHON:-python3}
LOG=${FLASHVID_SETUP_LOG:-$ROOT/.setup.log}
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
say() { echo "setup: [${SECONDS}s] $*"; }  # seconds since setup started: where a slow CI spends them
: >"$LOG"
# quiet() runs a step with its output in the log; on failure it shows the log's last lines and names the log
quiet() {
  echo "+ $*" >>"$LOG"
  if ! "$@" >>"$LOG" 2>&1; then
    say "FAILED: $*" >&2
    tail -n 15 "$LOG" | sed 's/^/  | /' >&2
    say "the full output is in $LOG" >&2
    exit 1
  fi
}

PYVER=$("$PY" -c 'import sys; print(f"{sys.version_info[0]}{sys.version_info[1]}")')
LOCK=${FLASHVID_LOCK:-constraints/py$PYVER.txt}
PIN=()
if [ "$LOCK" = none ]; then
  say "no lock (FLASHVID_LOCK=none): pip picks the newest versions pyproject.toml allows"
elif [ -f "$LOCK" ]; then
  PIN=(-c "$LOCK")
else
  say "WARNING: no lock for Python ${PYVER:0:1}.${PYVER:1} ($LOCK is missing): pip picks the newest allowed" \
      "versions, which the test suite has not seen (locks: constraints/; bash scripts/machine/lock.sh adds one)" >&2
fi

# 1. FFmpeg libraries ------------------------------------------------------------------------------------------
# grep reads all of ldconfig's output (not -q): with pipefail, grep -q exiting early can fail the pipe (SIGPIPE)
if ldconfig -p 2>/dev/null | grep 'libavcodec\.so\.' >/dev/null; then
  say "FFmpeg libraries found"
elif command -v apt-get >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  say "installing FFmpeg (apt-get install ffmpeg)"
  # another apt (unattended upgrades, a second setup) may hold dpkg's lock: wait up to 10 minutes for it
  APT_WAIT=(-o DPkg::Lock::Timeout=600)
  quiet $SUDO apt-get "${APT_WAIT[@]}" update
  quiet $SUDO env DEBIAN_FRONTEND=noninteractive apt-get "${APT_WAIT[@]}" install -y ffmpeg </dev/null
else
  say "WARNING: no FFmpeg libraries and no apt-get: install FFmpeg with your package manager for torchcodec" \
      "(flashvid falls back to PyAV's bundled FFmpeg meanwhile)" >&2
fi

# 2. torch + torchvision ---------------------------------------------------------------------------------------
if "$PY" -c 'import importlib.util as u, sys; sys.exit(0 if u.find_spec("torch") and u.find_spec("torchvision") else 1)'; then
  say "torch $("$PY" -c 'import importlib.metadata as m; print(m.version("torch"))') found"
else
  # FLASHVID_TORCH_INDEX=URL installs them from another wheel index, e.g. PyTorch's CPU-only one (~1 GB instead of
  # the ~6 GB of the default CUDA build, on a machine without a GPU)
  INDEX=()
  if [ -n "${FLASHVID_TORCH_INDEX:-}" ]; then INDEX=(--index-url "$FLASHVID_TORCH_INDEX"); fi
  say "installing torch 2.14.1 and torchvision 0.29.1 (pip${FLASHVID_TORCH_INDEX:+, from $FLASHVID_TORCH_INDEX})"
  quiet "$PY" -m pip install ${PIN[@]+"${PIN[@]}"} ${INDEX[@]+"${INDEX[@]}"} torch==2.14.1 torchvision==0.29.1
fi

# 3. flashvid, editable, with the dev extras -------------------------------------------------------------------
# Checked without importing anything heavy: this checkout must be the one Python finds, and every requirement of
# pyproject.toml (dependencies + dev) must be installed at an accepted version.
if env -u PYTHONPATH "$PY" - "$ROOT" <<'PYCHECK'
import importlib.metadata as md
import importlib.util
import os
import sys

root = sys.argv[1]
os.chdir("/")  # the checkout's own folder must not count as installed
spec = importlib.util.find_spec("flashvid")
if spec is None or spec.origin is None or \
        os.path.realpath(os.path.dirname(spec.origin)) != os.path.realpath(os.path.join(root, "flashvid")):
    sys.exit(1)
try:
    import tomllib
except ImportError:
    sys.exit(1)  # Python 3.10: let pip decide
try:
    from packaging.requirements import Requirement
except ImportError:
    from pip._vendor.packaging.requirements import Requirement
project = tomllib.load(open(os.path.join(root, "pyproject.toml"), "rb"))["project"]
for line in project.get("dependencies", []) + project.get("optional-dependencies", {}).get("dev", []):
    req = Requirement(line)
    try:
        version = md.version(req.name)
    except md.PackageNotFoundError:
        print(f"setup: {req.name} is missing")
        sys.exit(1)
    if req.specifier and not req.specifier.contains(version, prereleases=True):
        print(f"setup: {req.name} {version} does not satisfy {req.specifier}")
        sys.exit(1)
PYCHECK
then
  say "flashvid is installed from $ROOT with all its requirements"
else
  say "installing flashvid (editable) with its dev extras${PIN[@]+ at the versions of $LOCK} (pip)"
  quiet "$PY" -m pip install ${PIN[@]+"${PIN[@]}"} -e "$ROOT[dev]"
fi
