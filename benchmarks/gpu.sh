#!/usr/bin/env bash
# The benchmark suite on a GPU machine: throughput in float32 and bfloat16 (the large config scaled to
# 784-4096-4096-10, batch 8192) as a share of the GPU's matrix-multiply rate measured in the same run;
# jaxnet's per-call cost against the hand-written step (one process); ensemble scaling; the sequence models
# (transformer LM and LSTM steps, bfloat16, with a cuDNN-attention reference); the CNN configs' compiled epoch
# against per-step loops (cnn_epoch.py); data-parallel scaling when there are several GPUs.
#
#   bash benchmarks/gpu.sh            # about 8 min: jaxnet against hand-written JAX, torch.compile last
#   bash benchmarks/gpu.sh --full     # ~20 min: every installed peer, two rounds
#   bash benchmarks/gpu.sh --smoke    # on any machine, in seconds per stage: checks that every stage runs
#
# Results go to $OUT (or out/bench-gpu): gpu-results.md, one JSON per stage, gpu-log.txt. The quick run
# has one deadline for all stages (GPU_BUDGET_S seconds, default 500): stages run in order of importance,
# each with a hard timeout cut to the time left, and a stage that would start with under 30 s left is
# skipped; partial results are kept. Measured on an H200 (2026-11-28): a worker process costs 45-65 s,
# mostly XLA's GEMM autotuning of the medium and large configs, which is why the quick run measures few
# variants. Needs jax with its GPU plugin; jaxnet is taken from this checkout; peers are used when installed.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
DEST=${OUT:-out/bench-gpu}
mkdir -p "$DEST"
export PYTHONUNBUFFERED=1
SMOKE=0
FULL=0
[[ "${1:-}" == "--smoke" ]] && SMOKE=1
[[ "${1:-}" == "--full" ]] && FULL=1
if (( SMOKE )); then COMMON=(--profile cpu --smoke); else COMMON=(--profile gpu); fi
# Programs compiled by one round are reused by the next (jax's persistent compilation cache).
export JAX_COMPILATION_CACHE_DIR=${JAX_COMPILATION_CACHE_DIR:-/tmp/jaxnet-bench-jax-cache}
export JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0
LOG="$DEST/gpu-log.txt"
RESULTS="$DEST/gpu-results.md"
: >"$LOG"
: >"$RESULTS"
{ date -u '+%Y-%m-%d %H:%M UTC'; nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>/dev/null || echo "no nvidia-smi"; } | tee -a "$LOG"

DEADLINE=$((SECONDS + ${GPU_BUDGET_S:-500}))
stage() {  # stage NAME HARD_TIMEOUT_S SCRIPT ARGS...
    local name=$1 hard=$2 script=$3
    shift 3
    (( SMOKE )) && hard=120
    if (( ! FULL && ! SMOKE )); then
        local left=$((DEADLINE - SECONDS))
        if (( left < 30 )); then echo "== $name: skipped, ${left}s left of GPU_BUDGET_S" | tee -a "$LOG"; return; fi
        (( hard > left )) && hard=$left
    fi
    echo "== $name: $script $* (hard limit ${hard}s)" | tee -a "$LOG"
    local t0=$SECONDS
    timeout -k 10 "$hard" "$PY" "benchmarks/$script" "${COMMON[@]}" "$@" \
        --json "$DEST/$name.json" --markdown "$DEST/$name.md" >>"$LOG" 2>&1
    local rc=$?
    echo "== $name: exit $rc after $((SECONDS - t0)) s" | tee -a "$LOG"
    if [[ -f "$DEST/$name.md" ]]; then cat "$DEST/$name.md" >>"$RESULTS"; echo >>"$RESULTS"; rm -f "$DEST/$name.md"; fi
}

CORE=jaxnet-step,jaxnet-scan,raw-jax-step,raw-jax-scan,torch-compile
if (( FULL )); then
    stage gpu-throughput-f32 700 throughput.py --dtype float32 --rounds 2 --budget 600
    stage gpu-throughput-bf16 400 throughput.py --dtype bfloat16 --rounds 2 --budget 300 --variants "$CORE" --matmul-backends jax
    stage gpu-step-overhead 200 step_overhead.py --configs overhead,small,medium,large --rounds 15
    stage gpu-ensemble 200 ensemble_scaling.py --rounds 2 --budget 150
    stage gpu-sequence-f32 400 sequence.py --dtype float32 --rounds 2 --budget 300
    stage gpu-sequence-bf16 400 sequence.py --dtype bfloat16 --rounds 2 --budget 300
    stage gpu-cnn 300 cnn_epoch.py --rounds 2 --variants jaxnet-step,jaxnet-epoch,jaxnet-fit,raw-step,raw-scan,flax-linen
else
    # In order of importance: the per-step and scan targets, the per-call cost, ensembles, bfloat16, torch.
    F32=jaxnet-step,jaxnet-scan,raw-jax-step,raw-jax-scan
    stage gpu-throughput-f32 300 throughput.py --dtype float32 --rounds 1 --variants "$F32" --matmul-backends jax
    stage gpu-step-overhead 90 step_overhead.py --configs overhead,small,medium --rounds 10
    stage gpu-ensemble 90 ensemble_scaling.py --rounds 1 --members 1,8
    stage gpu-throughput-bf16 120 throughput.py --dtype bfloat16 --rounds 1 --variants jaxnet-step,jaxnet-scan,raw-jax-step \
        --matmul-backends jax
    # sequence models in bfloat16: jaxnet's transformer and LSTM steps, the hand-written ones, and the
    # hand-written transformer with cuDNN's fused attention (jax.nn.dot_product_attention)
    stage gpu-sequence-bf16 150 sequence.py --dtype bfloat16 --rounds 1 --variants jaxnet-step,raw-jax-step,raw-jax-cudnn
    # The CNN configs' compiled epoch against the per-step loops (PyTorch's CNN variants run on the CPU only).
    stage gpu-cnn 150 cnn_epoch.py --quick --variants jaxnet-step,jaxnet-epoch,raw-step,raw-scan
    (( SMOKE )) || stage gpu-torch-compile-large 120 throughput.py --dtype float32 --rounds 1 --configs large \
        --variants torch-compile --no-matmul
fi
NGPU=$(nvidia-smi -L 2>/dev/null | wc -l)
if (( SMOKE || NGPU > 1 )); then
    stage gpu-parallel 120 parallel_scaling.py --configs medium,large --rounds 1
else
    echo "== gpu-parallel: skipped, $NGPU GPU(s): data-parallel scaling needs at least two" | tee -a "$LOG"
fi
echo "results: $RESULTS" | tee -a "$LOG"
