#!/usr/bin/env bash
# Install what flashvid needs, skipping whatever is already there (safe to run again and again):
#   1. FFmpeg's shared libraries (torchcodec decodes with them), from apt when they are missing;
#   2. torch 2.14.1 + torchvision 0.29.1 when torch is not installed;
#   3. flashvid itself, editable, with its dev extras (pytest, nbclient...), when this checkout is not the
#      installed one or a requirement in pyproject.toml is missing.
# PYTHON picks the interpreter (default: python3; a virtual environment's when one is active).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
PY=${PYTHON:-python3}
say() { echo "setup: $*"; }

# 1. FFmpeg libraries ------------------------------------------------------------------------------------------
if ldconfig -p 2>/dev/null | grep -q 'libavcodec\.so\.'; then
  say "FFmpeg libraries found"
elif command -v apt-get >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  say "installing FFmpeg (apt-get)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq ffmpeg </dev/null
else
  say "WARNING: no FFmpeg libraries and no apt-get: install FFmpeg with your package manager for torchcodec" \
      "(flashvid falls back to PyAV's bundled FFmpeg meanwhile)" >&2
fi

# 2. torch + torchvision ---------------------------------------------------------------------------------------
if "$PY" -c 'import importlib.util as u, sys; sys.exit(0 if u.find_spec("torch") and u.find_spec("torchvision") else 1)'; then
  say "torch $("$PY" -c 'import importlib.metadata as m; print(m.version("torch"))') found"
else
  say "installing torch and torchvision"
  "$PY" -m pip install torch==2.14.1 torchvision==0.29.1
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
  say "installing flashvid (editable) with its dev extras"
  "$PY" -m pip install -e "$ROOT[dev]"
fi
