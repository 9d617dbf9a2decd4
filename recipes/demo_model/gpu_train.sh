#!/bin/sh
# The demo model's GPU recipe: one command on a lent GPU machine's stock image (Python 3.12, CUDA
# torch, no speech synthesizers, no network), run in the repository root:
#
#   sh recipes/demo_model/gpu_train.sh [MINUTES] [extra train.py arguments]
#
# Needs recipes/demo_model/gpu_data/ (made here by `python recipes/demo_model/gpu_pack.py pack`,
# git-ignored, carried with the working tree: run(carry=["recipes/demo_model/gpu_data"])).
# Installs the carried wheels that the image lacks (soundfile, soxr, safetensors), unpacks the Opus
# audio into /tmp/demo-data, trains from the packaged weights for MINUTES of wall time (default 7;
# cosine decay over that time) with transformers if installed, else xlsr-live's plain-torch
# module, and leaves under $OUT: run/ckpt_last.pt (weights + optimizer; export.py reads it),
# model_last.pt (weights only) and train.log.
# Dry run on CPU here: OUT=/tmp/gpu_dry sh recipes/demo_model/gpu_train.sh 1 --max-steps 3 --batch-s 8 --workers 1
set -e
HERE=$(dirname "$0")
MIN=${1:-7}
[ $# -gt 0 ] && shift
OUT=${OUT:-/tmp/gpu_out}
DATA=${GPU_DATA:-$HERE/gpu_data}  # the packed folder
mkdir -p "$OUT/run"
python -c "import soundfile, soxr, safetensors" 2>/dev/null || \
    pip install --no-index --find-links "$DATA/wheels" soundfile soxr safetensors
python "$HERE/gpu_pack.py" unpack --src "$DATA" --dst /tmp/demo-data
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
WORKERS=$(python -c "import os; print(max(1, min(12, (os.cpu_count() or 2) - 2)))")
python "$HERE/train.py" --data /tmp/demo-data --run "$OUT/run" --init xlsr_live/models/demo \
    --max-minutes "$MIN" --schedule time --lr 1e-3 --warmup 100 --batch-s 320 --bf16 \
    --curriculum-steps 1 --curriculum-start-s 12 --empty-after 0 --ckpt-min 2 --dev-every 300 \
    --log-every 20 --threads 4 --workers "$WORKERS" \
    --voice-weights "kokoro=6,kokoro:af=10,kokoro:bf=10,piper=2,world=2.5" "$@" 2>&1 | tee "$OUT/train.log"
python - "$OUT" <<'EOF'
import sys, torch
out = sys.argv[1]
ck = torch.load(f"{out}/run/ckpt_last.pt", map_location="cpu", weights_only=False)
torch.save({"model": ck["model"], "step": ck["step"], "config_over": ck["config_over"], "args": ck["args"]},
           f"{out}/model_last.pt")
print("step", ck["step"], "->", f"{out}/model_last.pt")
EOF
