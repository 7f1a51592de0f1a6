#!/usr/bin/env bash
# The benchmark suite on a GPU machine, in under 8 minutes: throughput in float32 and bfloat16
# (the large config scaled to 784-4096-4096-10, batch 8192), as a share of the GPU's matrix-multiply
# rate measured in the same rounds; ensemble scaling; data-parallel scaling over the GPUs present.
#
#   bash benchmarks/gpu.sh            # on the GPU machine; results in $OUT (or out/bench-gpu)
#   bash benchmarks/gpu.sh --smoke    # on any machine, in seconds: checks that every stage runs
#
# Every stage has a time budget (rounds that would overrun it are skipped) and a hard timeout.
# Needs jax with its GPU plugin; jaxnet is taken from this checkout; peers are used when installed.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
DEST=${OUT:-out/bench-gpu}
mkdir -p "$DEST"
export PYTHONUNBUFFERED=1
SMOKE=0
[[ "${1:-}" == "--smoke" ]] && SMOKE=1
if (( SMOKE )); then COMMON=(--profile cpu --smoke); else COMMON=(--profile gpu); fi
LOG="$DEST/gpu-log.txt"
RESULTS="$DEST/gpu-results.md"
: >"$LOG"
: >"$RESULTS"
{ date -u '+%Y-%m-%d %H:%M UTC'; nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>/dev/null || echo "no nvidia-smi"; } | tee -a "$LOG"

stage() {  # stage NAME HARD_TIMEOUT_S SCRIPT ARGS...
    local name=$1 hard=$2 script=$3
    shift 3
    (( SMOKE )) && hard=120
    echo "== $name: $script $* (hard limit ${hard}s)" | tee -a "$LOG"
    local t0=$SECONDS
    timeout -k 10 "$hard" "$PY" "benchmarks/$script" "${COMMON[@]}" "$@" \
        --json "$DEST/$name.json" --markdown "$DEST/$name.md" >>"$LOG" 2>&1
    local rc=$?
    echo "== $name: exit $rc after $((SECONDS - t0)) s" | tee -a "$LOG"
    if [[ -f "$DEST/$name.md" ]]; then cat "$DEST/$name.md" >>"$RESULTS"; echo >>"$RESULTS"; rm -f "$DEST/$name.md"; fi
}

BF16_VARIANTS=jaxnet-step,jaxnet-scan,raw-jax-step,raw-jax-scan,torch-compile
(( SMOKE )) && BF16_VARIANTS=jaxnet-step,raw-jax-step
stage gpu-throughput-f32 260 throughput.py --dtype float32 --rounds 2 --budget 170
stage gpu-throughput-bf16 150 throughput.py --dtype bfloat16 --rounds 2 --budget 90 --variants "$BF16_VARIANTS"
stage gpu-ensemble 70 ensemble_scaling.py --rounds 2 --budget 40
stage gpu-parallel 45 parallel_scaling.py --configs medium,large --rounds 1
echo "results: $RESULTS" | tee -a "$LOG"
