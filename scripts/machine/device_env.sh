# Source on the GPU machine (device tool), from the repo root: installs the carried wheels (.whl/, see
# ../shared/device/README.md) and lets torchcodec use PyAV's bundled FFmpeg (that machine has no system FFmpeg):
# PyAV's libs get their standard sonames as symlinks. Then `python3 scripts/bench.py ...` runs there.
rm -rf /tmp/site  # a warm machine keeps /tmp/site, and pip --target does not replace what is there
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl \
  >/dev/null || return 1
for f in /tmp/site/av.libs/lib{avutil,avcodec,avformat,avdevice,avfilter,swscale,swresample}-*.so.*; do
  soname=$(basename "$f" | sed -E 's/-[0-9a-f]{8}\.so\.([0-9]+).*/.so.\1/')
  ln -sf "$f" "/tmp/site/av.libs/$soname"
done
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 LD_LIBRARY_PATH=/tmp/site/av.libs:${LD_LIBRARY_PATH:-}
