#!/bin/sh
# The demo model's GPU recipe: one command on a lent GPU machine's stock image (Python 3.12, CUDA
# torch, transformers, scipy; no speech synthesizers, no network), run in the repository root:
#
#   sh recipes/demo_model/gpu_train.sh [MINUTES] [extra train.py arguments]
#
# Needs recipes/demo_model/gpu_data/ (made here by `python recipes/demo_model/gpu_pack.py pack`,
# git-ignored, carried with the working tree: run(carry=["recipes/demo_model/gpu_data"])).
# Installs the carried wheels that the image lacks (soundfile, soxr, pyroomacoustics, cffi,
# pycparser), unpacks the Opus audio into /tmp/demo-data (one process per core), trains from the
# packaged weights for MINUTES of wall time (default 8; cosine decay over that time) with the same
# augmentation and voice weights as the CPU run (transformers' model if it runs, else xlsr-live's
# plain-torch module for the time that is left; when the data workers fall behind, the last batch is
# trained on again, at most twice: --echo-max 2, logged as "echoed"), and leaves under $OUT:
#   model_best.pt  half-precision weights at the best dev CER (10 MB; export.py / evaluate.py read it)
#   model_last.pt  half-precision weights of the last checkpoint (every 2 minutes and at the end)
#   train.log      the training log (one JSON line per --log-every steps, dev CER every --dev-every)
#   gpu_util.txt   nvidia-smi's GPU use and memory every 20 s
#   run/ckpt_last.pt  weights + optimizer (too big to come back from a lent machine; for local runs)
# Dry run on CPU here (tiny): GPU_DATA=/tmp/gpu_data_test OUT=/tmp/gpu_dry sh recipes/demo_model/gpu_train.sh 1 \
#   --max-steps 3 --batch-s 8 --workers 1
set -e
HERE=$(dirname "$0")
MIN=${1:-8}
[ $# -gt 0 ] && shift
OUT=${OUT:-/tmp/gpu_out}
DATA=${GPU_DATA:-$HERE/gpu_data}  # the packed folder
mkdir -p "$OUT"
PY=$(command -v python || command -v python3)  # the stock image's interpreter may be python3 only
if command -v nvidia-smi >/dev/null; then  # GPU use every 20 s: is the GPU or the data the limit?
    (while sleep 20; do nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader; done) \
        >"$OUT/gpu_util.txt" 2>&1 &
    SAMPLER=$!
    trap 'kill $SAMPLER 2>/dev/null' EXIT
fi
# the data workers are single-threaded processes; the main process sets its own torch threads
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONUNBUFFERED=1
T0=$(date +%s)
"$PY" -c "import soundfile, soxr, pyroomacoustics" 2>/dev/null || \
    "$PY" -m pip install -q --no-index --no-deps --no-compile "$DATA"/wheels/*.whl
"$PY" "$HERE/gpu_pack.py" unpack --src "$DATA" --dst /tmp/demo-data
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
WORKERS=$("$PY" -c "import os; print(max(1, min(14, (os.cpu_count() or 2) - 2)))")

train() {  # train BACKEND RUN_DIR MINUTES [extra arguments]
    backend=$1 run=$2 minutes=$3; shift 3
    "$PY" "$HERE/train.py" --data /tmp/demo-data --run "$run" --init xlsr_live/models/demo \
        --backend "$backend" --max-minutes "$minutes" --schedule time --lr 5e-4 --warmup 100 \
        --batch-s 320 --bf16 --curriculum-steps 1 --curriculum-start-s 12 --empty-after 0 --ckpt-min 2 \
        --dev-every 200 --log-every 20 --threads 4 --workers "$WORKERS" --best-weights "$OUT/model_best.pt" \
        --last-weights "$OUT/model_last.pt" \
        --rooms --vtlp-max 1.25 --codecs 0.1 --echo-max 2 \
        --voice-weights "kokoro=6,kokoro:af=10,kokoro:bf=10,piper=2,world=2.5,espeak=1.5" "$@"
}
RUN="$OUT/run"
if ! train auto "$RUN" "$MIN" "$@" >"$OUT/train.log" 2>&1; then
    tail -3 "$OUT/train.log"
    LEFT=$("$PY" -c "print(round($MIN - ($(date +%s) - $T0) / 60 - 0.2, 2))")
    if [ -f "$RUN/ckpt_last.pt" ]; then
        echo "the run failed after a checkpoint: its last checkpoint is the result"
    elif "$PY" -c "import sys; sys.exit(not $LEFT >= 1)"; then
        # transformers' model failed on this image: the plain-torch module for the minutes left
        echo "auto backend failed before a checkpoint; --backend xlsr for $LEFT minutes"
        RUN="$OUT/run_xlsr"
        train xlsr "$RUN" "$LEFT" "$@" >>"$OUT/train.log" 2>&1
    else
        echo "the run failed with less than a minute left"; exit 1
    fi
fi
grep -E '"dev_cer"|params|done' "$OUT/train.log" | cut -c1-160 | tail -20
