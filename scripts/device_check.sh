#!/usr/bin/env bash
# The checks to run on a machine with a GPU, in under 8 minutes:
#   1. the peer benchmark (scripts/bench_peers.py) on the GPU in float32 and mixed float16: the zoo
#      against torchvision and timm where PyTorch is installed (ZOO_TORCH_PYTHON), the zoo alone where not;
#   2. one `zoo finetune resnet50` epoch on the built-in shapes at 128x128, then `zoo export` of the run
#      and `zoo predict` on the export;
#   3. BENCHMARKS.md's GPU section (bench_peers_gpu), the run's log and timings copied to $OUT when set.
#
#   bash scripts/device_check.sh                 # from the repository root
#   DEVICE_CHECK_QUICK=1 bash scripts/device_check.sh   # the same steps, tiny (to try the script on a CPU)
set -euo pipefail
cd "$(dirname "$0")/.."

OUT="${OUT:-$(mktemp -d)}"
WORK="$(mktemp -d)"
LOG="$OUT/device_check.log"
PYTHON="${PYTHON:-python}"
TORCH_PYTHON="${ZOO_TORCH_PYTHON:-$PYTHON}"
mkdir -p "$OUT"
exec > >(tee -a "$LOG") 2>&1

if [[ -n "${DEVICE_CHECK_QUICK:-}" ]]; then
  PEERS=(--models resnet18 --sizes 32 --batch 4 --rounds 1)
  FINETUNE=(lenet5 --epochs 1 --max-examples 200)
else
  # resnet18/50 and vgg16 at 224, batch 32, two rounds: about 3 minutes on one modern GPU
  PEERS=(--models resnet18,resnet50,vgg16 --sizes 224 --batch 32 --rounds 2)
  FINETUNE=(resnet50 --data builtin:zoo_shapes/128 --image-size 128 --batch-size 64 --epochs 1)
fi

step() { echo; echo "== $* ($(date -u +%H:%M:%S) UTC)"; }
seconds() { local start=$1; echo $(( $(date +%s) - start )); }

step "the machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || echo "nvidia-smi: no NVIDIA GPU visible"
"$PYTHON" -c "import tensorflow as tf; print('TensorFlow', tf.__version__, 'GPUs:', tf.config.list_physical_devices('GPU'))"
SIDES=zoo
if "$TORCH_PYTHON" -c "import torch, torchvision, timm; print('torch', torch.__version__, 'CUDA:', torch.cuda.is_available())"; then
  SIDES=zoo,torchvision,timm
else
  echo "PyTorch with torchvision and timm is not importable by $TORCH_PYTHON: the zoo side alone"
fi

step "peer benchmark: float32 and mixed float16, sides $SIDES"
start=$(date +%s)
ZOO_TORCH_PYTHON="$TORCH_PYTHON" "$PYTHON" scripts/bench_peers.py "${PEERS[@]}" --precisions float32,float16 \
  --sides "$SIDES" --worker-timeout 240
echo "peer benchmark: $(seconds "$start") s"

step "one fine-tuning epoch: zoo finetune ${FINETUNE[*]}"
start=$(date +%s)
"$PYTHON" -m finetune finetune "${FINETUNE[@]}" --out "$WORK/run"
echo "fine-tuning: $(seconds "$start") s"
cp "$WORK/run/metrics.json" "$OUT/finetune_metrics.json"
cp "$WORK/run/history.csv" "$OUT/finetune_history.csv"

step "export and predict on the export"
start=$(date +%s)
"$PYTHON" -m finetune export "$WORK/run" --out "$WORK/serving"
"$PYTHON" - "$WORK" <<'EOF'
import sys
from pathlib import Path

import numpy as np
from PIL import Image

Image.fromarray(np.random.default_rng(0).integers(0, 255, (128, 128, 3), dtype=np.uint8)).save(Path(sys.argv[1]) / "probe.png")
EOF
export_dir="$(find "$WORK/serving" -name saved_model.pb -printf '%h\n' | head -1)"
"$PYTHON" -m finetune predict "$export_dir" "$WORK/probe.png"
echo "export and prediction: $(seconds "$start") s"

step "results"
cp BENCHMARKS.md "$OUT/BENCHMARKS.md"
echo "BENCHMARKS.md (with its bench_peers_gpu section) and this log are in $OUT"
rm -rf "$WORK"
