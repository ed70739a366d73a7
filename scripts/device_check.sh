#!/usr/bin/env bash
# The one GPU check, run from the repository root on a lent CUDA machine (no pip install needed):
#   scripts/device_check.sh            GPU parity tests (pytest -m gpu), then benchmarks/gpu_bench.py
#   scripts/device_check.sh --prepare  (here, before the run) copy the nano weights and dog.jpg into
#                                      .devcheck/shared/, the folder to carry (../shared does not travel)
# Writes $OUT/gpu_tests.txt and $OUT/gpu_bench.json when $OUT is set. Whole run: under 4 minutes on an H100.
set -u
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--prepare" ]; then
    src=${STREAMYOLOX_SHARED:-../shared}
    mkdir -p .devcheck/shared/weights .devcheck/shared/media
    cp "$src/weights/yolox_nano.pth" .devcheck/shared/weights/ &&
        cp "$src/media/dog.jpg" "$src/media/street_pan_720p.mp4" .devcheck/shared/media/ &&
        du -sh .devcheck
    exit $?
fi

export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
# PyAV and pyzmq are not on the device image: carried as wheels in .whl/ (see scripts/device_wheels.sh)
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl &&
        export PYTHONPATH=$PYTHONPATH:/tmp/site
fi
unset NUMBA_ENABLE_CUDASIM
if [ -d .devcheck/shared ]; then
    export STREAMYOLOX_SHARED=$PWD/.devcheck/shared
    export STREAMYOLOX_WEIGHTS_DIR=$PWD/.devcheck/shared/weights
elif [ -f .devcheck/yolox_nano.pth ]; then
    export STREAMYOLOX_WEIGHTS_DIR=$PWD/.devcheck
fi
out=${OUT:-$(mktemp -d)}

echo "== machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | head -2
python - <<'PY' 2>&1
import importlib
for m in ("torch", "cupy", "numba", "numba_cuda", "numpy", "cv2", "onnxruntime"):
    try:
        print(f"  {m} {getattr(importlib.import_module(m), '__version__', '?')}")
    except Exception as exc:
        print(f"  {m} MISSING ({type(exc).__name__})")
PY
echo "  weights dir: ${STREAMYOLOX_WEIGHTS_DIR:-none (random init)}"

echo "== GPU parity tests"
start=$SECONDS
timeout 200 python -m pytest -q -m gpu -rs -p no:cacheprovider -p no:warnings tests/gpu tests/ops tests/trainer/test_gpu_amp.py >"$out/gpu_tests.txt" 2>&1
rc_tests=$?
tail -n 40 "$out/gpu_tests.txt"
echo "tests: rc=$rc_tests in $((SECONDS - start))s"

echo "== GPU pipelines (streamyolox run, 720p clip, 300 frames)"
python - "$out" <<'PY'
import glob, json, sys
for path in sorted(glob.glob(f"{sys.argv[1]}/gpu_pipeline_*.json")):
    m = json.load(open(path))
    rows = ", ".join(f"{s['stage']} {s['fps']:.0f} fps busy {s['busy_pct']:.0f}%" for s in m["stages"])
    print(f"  {path.rsplit('/', 1)[-1]}: {m['elapsed_s']:.1f} s incl. start-up | {rows}")
PY

echo "== GPU benchmark"
start=$SECONDS
# numba-cuda warns about small grids on every launch: keep the table readable
timeout 200 python benchmarks/gpu_bench.py --json "$out/gpu_bench.json" --budget-s 120 2>&1 | grep -v -e NumbaPerformanceWarning -e "warn(errors"
rc_bench=${PIPESTATUS[0]}
echo "bench: rc=$rc_bench in $((SECONDS - start))s; json: $out/gpu_bench.json"
[ "$rc_tests" -eq 0 ] && [ "$rc_bench" -eq 0 ]
