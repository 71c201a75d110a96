#!/usr/bin/env bash
# Every GPU figure of issue 18 in one run of at most ~6 minutes on one GPU, no network; one summary table.
#
#   bash benchmarks/gpu_check.sh            # on the GPU machine, from the source tree's root (or anywhere)
#   bash benchmarks/gpu_check.sh --smoke    # every section on the CPU at tiny sizes: checks the script
#                                           # (~1-2 min on an idle 2-core CPU; compile uses aot_eager there)
#
# Needs a torch with CUDA and Lightning. It runs from a plain copy of the source tree (PYTHONPATH=src is set
# here; nothing is pip-installed). soundfile and soxr (for the end-to-end sections) and pytest (for the CUDA
# tests) are not needed elsewhere; carry them as wheels and install them beside the tree first:
#
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl; export PYTHONPATH=src:/tmp/site
#
# (.whl/ holding soundfile, cffi, pycparser, soxr, and pytest, pluggy, iniconfig for the test section.)
# Sections, each in its own time-limited process so that one failure cannot sink the rest:
#   env         versions, the device, measured bf16 / TF32 matmul peaks (MFU is taken against the bf16 one),
#               which SDPA kernels take EAT's attention shapes
#   forward     EAT-base forward, bf16, batch 64 (benchmarks/eat_forward_throughput.py)
#   dap-eager   DAP step at 12x16 and 32x16 for each decoder convolution (conv, conv-nhwc, matmul), with
#               MFU and a kernel profile at 32x16 (benchmarks/dap_throughput.py)
#   finetune    fine-tuning step, EAT-base, bf16, batch 32 (benchmarks/finetune_throughput.py)
#   make-data   512 + 6144 generated 10-s clips (64 noise files, hard links)
#   pretrain    `asdlab pretrain` end to end on them, batch 32, 8 workers, the fastest eager decoder
#   embed       `asdlab embed` (EAT-base) end to end on the 6144 clips, batch 64
#   pytest      the suite's CUDA tests (pytest -m cuda)
#   dap-compile the fastest eager decoder with torch.compile of the whole objective, 32x16 then 12x16
#               (late: compiling takes longest; it gets what is left of the budget)
#   finetune-compile  the fine-tuning step with the encoder compiled (when budget is left)
# Settings a run can flip (environment): GPU_CHECK_DECODERS (default conv,conv-nhwc,matmul),
# GPU_CHECK_COMPILE_DECODER / GPU_CHECK_E2E_DECODER (default: the fastest eager decoder),
# GPU_CHECK_BUDGET_S (default 360), GPU_CHECK_SECTIONS (comma-separated names; default all; "env" is
# always useful first, it measures the peak), GPU_CHECK_COMPILE_BACKEND, PYTHON (default python3).
# A second run for the compile sections alone (name the decoder the first run found fastest), e.g.:
#   GPU_CHECK_SECTIONS=env,dap-compile,finetune-compile GPU_CHECK_COMPILE_DECODER=matmul \
#   GPU_CHECK_BUDGET_S=420 bash benchmarks/gpu_check.sh
# Output: printed, and when $OUT is set also saved there: gpu_check.log, summary.md, results.jsonl.
set -u
cd "$(dirname "$0")/.."
SMOKE=0
if [[ "${1:-}" == "--smoke" ]]; then SMOKE=1; fi
PY=${PYTHON:-python3}
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")
RES="$WORK/results.jsonl"
LOG="$WORK/gpu_check.log"
PYTEST_LOG="$WORK/pytest.txt"
touch "$RES"
exec > >(tee -a "$LOG") 2>&1

if [[ $SMOKE == 1 ]]; then
  DEVICE=cpu; ACCEL=cpu; PRESET=eat-tiny; FRAMES=128; CLONES=4; BATCHES=2,3; PAPER_BATCH=3; STEPS=2; WARMUP=1
  FWD_BATCH=2; FT_BATCH=2; FT_SECONDS=2; E2E_SECONDS=2; E2E_CLIPS=64; E2E_BATCH=3; E2E_STEPS=6; E2E_LOG=2
  EMB_CLIPS=64; EMB_BATCH=8; WORKERS=1; EMB_WORKERS=1; BUDGET=${GPU_CHECK_BUDGET_S:-400}; PROFILE_STEPS=1
  COMPILE_BACKEND=${GPU_CHECK_COMPILE_BACKEND:-aot_eager}  # wiring only: inductor on a loaded 2-core CPU takes minutes
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
else
  DEVICE=cuda; ACCEL=cuda; PRESET=eat-base; FRAMES=1024; CLONES=16; BATCHES=12,32; PAPER_BATCH=32; STEPS=5; WARMUP=2
  FWD_BATCH=64; FT_BATCH=32; FT_SECONDS=10; E2E_SECONDS=10; E2E_CLIPS=512; E2E_BATCH=32; E2E_STEPS=20; E2E_LOG=5
  EMB_CLIPS=6144; EMB_BATCH=64; WORKERS=8; EMB_WORKERS=$(( $(nproc) > 2 ? $(nproc) - 1 : 1 )); BUDGET=${GPU_CHECK_BUDGET_S:-360}
  PROFILE_STEPS=2; COMPILE_BACKEND=${GPU_CHECK_COMPILE_BACKEND:-inductor}
  if (( EMB_WORKERS > 16 )); then EMB_WORKERS=16; fi
fi
DECODERS=${GPU_CHECK_DECODERS:-conv,conv-nhwc,matmul}
START=$(date +%s)
DEADLINE=$(( START + BUDGET ))
echo "gpu_check: smoke=$SMOKE device=$DEVICE preset=$PRESET budget=${BUDGET}s work=$WORK $(date -u +%FT%TZ)"

# run_section NAME LIMIT_S MIN_S COMMAND...: time-limited (and skipped when less than MIN_S of the budget is left).
run_section() {
  local name=$1 limit=$2 min=$3; shift 3
  local now left rc began
  if [[ -n "${GPU_CHECK_SECTIONS:-}" && ",$GPU_CHECK_SECTIONS," != *",$name,"* ]]; then return 0; fi
  now=$(date +%s); left=$(( DEADLINE - now ))
  if (( left < min )); then
    echo "=== $name: SKIPPED (${left}s of the budget left, needs ${min}s) ==="
    echo "{\"kind\": \"section\", \"name\": \"$name\", \"rc\": null, \"seconds\": 0, \"skipped\": \"budget\"}" >> "$RES"
    return 0
  fi
  if (( limit > left )); then limit=$left; fi
  echo; echo "=== $name (limit ${limit}s, $(( now - START ))s elapsed) ==="
  began=$(date +%s)
  timeout -k 10 "$limit" "$@"
  rc=$?
  echo "=== $name: exit $rc after $(( $(date +%s) - began ))s ==="
  echo "{\"kind\": \"section\", \"name\": \"$name\", \"rc\": $rc, \"seconds\": $(( $(date +%s) - began ))}" >> "$RES"
}

fastest_eager() {  # the eager decoder convolution with the most clips/s at the paper's batch (default conv)
  "$PY" - "$RES" "$PAPER_BATCH" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
rows = [r for r in rows if r.get("kind") == "dap_step" and "error" not in r and not r.get("compiled")
        and r["batch_size"] == int(sys.argv[2])]
print(max(rows, key=lambda r: r["clips_per_s"])["decoder_conv"] if rows else "conv")
EOF
}

run_section env 60 20 "$PY" benchmarks/_gpu_check_env.py --device "$DEVICE" --json "$RES" --peak-file "$WORK/peak" \
  $( [[ $SMOKE == 1 ]] && echo "--peak-size 1024" )
PEAK=$(cat "$WORK/peak" 2>/dev/null || echo "")
PEAK_ARGS=(); if [[ -n "$PEAK" ]]; then PEAK_ARGS=(--peak-tflops "$PEAK"); fi

run_section forward 60 20 "$PY" benchmarks/eat_forward_throughput.py --preset "$PRESET" --device "$DEVICE" \
  --dtype bfloat16 --batch "$FWD_BATCH" --frames "$FRAMES" --rounds 3 --repeats 3 --json "$RES" \
  $( [[ $SMOKE == 1 ]] && echo "--peak-size 1024" )

run_section dap-eager 150 40 "$PY" benchmarks/dap_throughput.py --preset "$PRESET" --device "$DEVICE" --precision bf16 \
  --frames "$FRAMES" --clones "$CLONES" --batch-sizes "$BATCHES" --decoder-conv "$DECODERS" --steps "$STEPS" \
  --warmup "$WARMUP" --profile "$PROFILE_STEPS" --profile-target all --profile-batch "$PAPER_BATCH" "${PEAK_ARGS[@]}" \
  --json "$RES"

BEST=$(fastest_eager)
COMPILE_DECODER=${GPU_CHECK_COMPILE_DECODER:-$BEST}
E2E_DECODER=${GPU_CHECK_E2E_DECODER:-$BEST}
echo "fastest eager decoder: $BEST (compile: $COMPILE_DECODER, end to end: $E2E_DECODER)"
run_section finetune 60 25 "$PY" benchmarks/finetune_throughput.py --preset "$PRESET" --device "$DEVICE" --precision bf16 \
  --batch-size "$FT_BATCH" --duration-s "$FT_SECONDS" --steps "$STEPS" --warmup "$WARMUP" "${PEAK_ARGS[@]}" --json "$RES"

run_section make-data 40 10 bash -c "'$PY' benchmarks/end_to_end_throughput.py make-dataset '$WORK/clips' --clips $E2E_CLIPS \
  --unique 64 --duration-s $E2E_SECONDS && '$PY' benchmarks/end_to_end_throughput.py make-dataset '$WORK/many' \
  --clips $EMB_CLIPS --unique 64 --duration-s $E2E_SECONDS"

run_section pretrain 90 40 "$PY" benchmarks/end_to_end_throughput.py pretrain "$WORK/clips" --out "$WORK/dap" \
  --preset "$PRESET" --batch-size "$E2E_BATCH" --clones "$CLONES" --steps "$E2E_STEPS" --log-every "$E2E_LOG" \
  --num-workers "$WORKERS" --accelerator "$ACCEL" --decoder-conv "$E2E_DECODER" --json "$RES"

run_section embed 60 25 "$PY" benchmarks/end_to_end_throughput.py embed "$WORK/many" --out "$WORK/embed" \
  --backbone "$PRESET" --device "$DEVICE" --batch-size "$EMB_BATCH" --num-workers "$EMB_WORKERS" --json "$RES"

if "$PY" -c "import pytest" 2>/dev/null; then
  run_section pytest 75 20 bash -c "'$PY' -m pytest -q -m cuda -p no:cacheprovider tests 2>&1 | tee '$PYTEST_LOG'; exit \${PIPESTATUS[0]}"
else
  echo "=== pytest: SKIPPED (pytest is not installed; carry its wheels, see the header) ==="
  echo '{"kind": "section", "name": "pytest", "rc": null, "seconds": 0, "skipped": "pytest not installed"}' >> "$RES"
fi

# Late: compiling EAT-base takes the longest and gets what is left of the budget (results are saved per batch).
COMPILE_BATCHES="$PAPER_BATCH,${BATCHES%%,*}"
if [[ $SMOKE == 1 ]]; then COMPILE_BATCHES=$PAPER_BATCH; fi
run_section dap-compile 150 60 "$PY" benchmarks/dap_throughput.py --preset "$PRESET" --device "$DEVICE" --precision bf16 \
  --frames "$FRAMES" --clones "$CLONES" --batch-sizes "$COMPILE_BATCHES" --decoder-conv "$COMPILE_DECODER" --compile \
  --compile-backend "$COMPILE_BACKEND" --steps "$STEPS" --warmup "$WARMUP" --profile "$PROFILE_STEPS" --profile-target all --profile-batch "$PAPER_BATCH" \
  "${PEAK_ARGS[@]}" --json "$RES"


run_section finetune-compile 120 40 "$PY" benchmarks/finetune_throughput.py --preset "$PRESET" --device "$DEVICE" \
  --precision bf16 --batch-size "$FT_BATCH" --duration-s "$FT_SECONDS" --steps "$STEPS" --warmup "$WARMUP" --compile \
  --compile-backend "$COMPILE_BACKEND" "${PEAK_ARGS[@]}" --json "$RES"

echo; echo "=== summary ($(( $(date +%s) - START ))s) ==="
"$PY" benchmarks/_gpu_check_summary.py "$RES" --pytest-log "$PYTEST_LOG" --out "$WORK/summary.md" \
  $( [[ $SMOKE == 1 ]] && echo "--smoke" )
if [[ -n "${OUT:-}" ]]; then
  mkdir -p "$OUT" && cp "$RES" "$WORK/summary.md" "$OUT"/ && cp "$LOG" "$OUT/gpu_check.log"
  echo "saved to $OUT: gpu_check.log, summary.md, results.jsonl"
fi
