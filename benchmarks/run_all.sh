#!/usr/bin/env bash
# The side-by-side CPU run of issue 7: writes benchmarks/results/cpu_<date>.json and .png and fills the
# results section of benchmarks/README.md. Everything runs in one go on the same machine:
#   1. the official YOLOX demo loop (benchmarks/official_demo_baseline.py) on street_pan_720p.mp4;
#   2. `streamyolox bench all`: onnxruntime's bare model at batch 1 (the baseline), every model backend x
#      batch x size, letterbox, decode+NMS, transport 720p/1080p over inproc/ipc/tcp vs memcpy, and
#      pipelines/demo.yaml end to end on street_pan_720p.mp4 (yolox-nano 416, JSON sink) with the RSS of
#      every process.
# Usage: benchmarks/run_all.sh [extra `streamyolox bench all` options, e.g. --repeats 10]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
SHARED=${STREAMYOLOX_SHARED:-$(cd .. && pwd)/shared}
VIDEO=${BENCH_VIDEO:-$SHARED/media/street_pan_720p.mp4}
WEIGHTS=${BENCH_WEIGHTS:-$SHARED/weights/yolox_nano.pth}
OUT=benchmarks/results/cpu_$(date +%Y-%m-%d)
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" STREAMYOLOX_SHARED="$SHARED"
for f in "$VIDEO" "$WEIGHTS"; do
  [ -e "$f" ] || { echo "run_all.sh: $f not found (set STREAMYOLOX_SHARED, BENCH_VIDEO or BENCH_WEIGHTS)" >&2; exit 2; }
done
mkdir -p benchmarks/results
DEMO_JSON=$(mktemp --suffix=.json)
DEMO_LOG=$(mktemp --suffix=.log)
trap 'rm -f "$DEMO_JSON" "$DEMO_LOG"' EXIT

echo "== official YOLOX demo baseline" >&2
"$PY" benchmarks/official_demo_baseline.py --path "$VIDEO" --ckpt "$WEIGHTS" --json "$DEMO_JSON" \
  2> "$DEMO_LOG" || { tail -5 "$DEMO_LOG" >&2; exit 1; }

echo "== streamyolox bench all" >&2
"$PY" -m streamyolox bench all --weights "$WEIGHTS" \
  --pipeline pipelines/demo.yaml --set "stages.source.url=$VIDEO" --set "model.weights=$WEIGHTS" \
  --include "$DEMO_JSON" --json "$OUT.json" --plot "$OUT.png" --markdown benchmarks/README.md "$@"
echo "wrote $OUT.json $OUT.png and the table in benchmarks/README.md" >&2
