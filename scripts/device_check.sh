#!/usr/bin/env bash
# The checks to run on a machine with a GPU, in under 8 minutes, ending with one table:
#   1. the peer benchmark (scripts/bench_peers.py) on the GPU: resnet18, resnet50 and vgg16 at
#      224x224, batch 32, in float32, mixed float16 and (on GPUs with native bfloat16, compute
#      capability 8.0 and up) mixed bfloat16, inference and training: the zoo against torchvision
#      and timm where PyTorch is installed (ZOO_TORCH_PYTHON), the zoo alone where not;
#   2. one `zoo finetune resnet50` epoch at 224x224 on a generated image folder (two classes),
#      then `zoo export` of the run and `zoo predict` on the export;
#   3. one table of all of it (the peer rows, then the fine-tuning, export and prediction), also in
#      $OUT/device_check.md; BENCHMARKS.md (its bench_peers_gpu section), the run's metrics and this
#      log are copied to $OUT when set.
#
#   bash scripts/device_check.sh                        # from the repository root
#   DEVICE_CHECK_QUICK=1 bash scripts/device_check.sh   # the same steps, tiny (to try the script on a CPU; writes no BENCHMARKS.md)
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
  PEERS=(--models resnet18 --sizes 32 --batch 4 --rounds 1 --no-write)
  SIZE=32 PER_CLASS=8 BATCH=4
  FINETUNE=(lenet5 --image-size "$SIZE" --batch-size "$BATCH" --epochs 1)
else
  # resnet18/50 and vgg16 at 224, batch 32, two rounds: a few minutes on one modern GPU
  PEERS=(--models resnet18,resnet50,vgg16 --sizes 224 --batch 32 --rounds 2)
  SIZE=224 PER_CLASS=160 BATCH=32
  FINETUNE=(resnet50 --image-size "$SIZE" --batch-size "$BATCH" --epochs 1)
fi
TIMINGS="$WORK/timings.tsv"
: > "$TIMINGS"

step() { echo; echo "== $* ($(date -u +%H:%M:%S) UTC)"; }
seconds() { local start=$1; echo $(( $(date +%s) - start )); }
timing() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >> "$TIMINGS"; }  # check, result, seconds

step "the machine"
nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv || echo "nvidia-smi: no NVIDIA GPU visible"
# mixed bfloat16 where every GPU multiplies it natively (compute capability 8.0 and up)
PRECISIONS="$("$PYTHON" - <<'EOF'
import finetune  # noqa: F401  (the kit's start-up settings)
import tensorflow as tf

gpus = tf.config.list_physical_devices("GPU")
capabilities = [tf.config.experimental.get_device_details(gpu).get("compute_capability") or (0, 0) for gpu in gpus]
print("float32,float16,bfloat16" if gpus and all(tuple(c) >= (8, 0) for c in capabilities) else "float32,float16")
EOF
)"
"$PYTHON" -c "import tensorflow as tf; print('TensorFlow', tf.__version__, 'GPUs:', tf.config.list_physical_devices('GPU'))"
SIDES=zoo
if "$TORCH_PYTHON" -c "import torch, torchvision, timm; print('torch', torch.__version__, 'CUDA:', torch.cuda.is_available())"; then
  SIDES=zoo,torchvision,timm
else
  echo "PyTorch with torchvision and timm is not importable by $TORCH_PYTHON: the zoo side alone"
fi

step "peer benchmark: $PRECISIONS, sides $SIDES"
start=$(date +%s)
ZOO_TORCH_PYTHON="$TORCH_PYTHON" "$PYTHON" scripts/bench_peers.py "${PEERS[@]}" --precisions "$PRECISIONS" \
  --sides "$SIDES" --worker-timeout 240 --rows-json "$WORK/peers.json"
timing "peer benchmark" "$PRECISIONS; $SIDES" "$(seconds "$start")"

step "a generated image folder: 2 classes x $PER_CLASS images at ${SIZE}x${SIZE}"
"$PYTHON" - "$WORK/images" "$SIZE" "$PER_CLASS" <<'EOF'
import sys
from pathlib import Path

import numpy as np
from PIL import Image

root, size, per_class = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(0)
for label, name in enumerate(("horizontal", "vertical")):
    folder = root / name
    folder.mkdir(parents=True)
    for index in range(per_class):
        stripes = (np.arange(size) // max(size // 8, 1) % 2 * 160 + 40).astype(np.uint8)
        pixels = np.repeat(stripes[:, None] if label == 0 else stripes[None, :], size, axis=1 - label)
        noise = rng.integers(0, 40, (size, size, 3), dtype=np.uint8)
        Image.fromarray(np.clip(pixels[..., None] + noise, 0, 255).astype(np.uint8)).save(folder / f"{index}.png")
Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(root.parent / "probe.png")
EOF

step "one fine-tuning epoch: zoo finetune ${FINETUNE[*]}"
start=$(date +%s)
"$PYTHON" -m finetune finetune "${FINETUNE[@]}" --data "$WORK/images" --out "$WORK/run"
cp "$WORK/run/metrics.json" "$OUT/finetune_metrics.json"
cp "$WORK/run/history.csv" "$OUT/finetune_history.csv"
history="$WORK/run/history.csv"  # the epoch's row as name=value pairs
timing "zoo finetune ${FINETUNE[0]}, 1 epoch" "$(paste -d= <(head -1 "$history" | tr -d '\r' | tr , '\n') \
  <(tail -1 "$history" | tr -d '\r' | tr , '\n') | paste -sd' ')" "$(seconds "$start")"

step "export and predict on the export"
start=$(date +%s)
"$PYTHON" -m finetune export "$WORK/run" --out "$WORK/serving"
timing "zoo export" "SavedModel" "$(seconds "$start")"
start=$(date +%s)
export_dir="$(find "$WORK/serving" -name saved_model.pb -printf '%h\n' | head -1)"
"$PYTHON" -m finetune predict "$export_dir" "$WORK/probe.png" | tee "$WORK/prediction.txt"
timing "zoo predict on the export" "top-1: $(grep -m1 -E '^ *1\. ' "$WORK/prediction.txt" | sed 's/^ *1\. *//')" "$(seconds "$start")"

step "results"
"$PYTHON" - "$WORK/peers.json" "$TIMINGS" <<'EOF' | tee "$OUT/device_check.md"
import json
import sys

peers = json.load(open(sys.argv[1]))
rows = []
for row in sorted(peers["rows"].values(), key=lambda row: (row["model"], row["precision"], row["mode"])):
    rates = row["images_per_second"]
    speeds = {side: f"{ratio:.2f}x" for side, (ratio, _, _) in row["zoo_speed"].items()}
    result = ", ".join(f"{side} {rate:.0f} img/s" for side, rate in rates.items())
    versus = ", ".join(f"vs {side} {speed}" for side, speed in speeds.items())
    rows.append([f"{row['model']} {row['size']}x{row['size']} batch {row['batch']}", f"{row['precision']} {row['mode']}",
                 result + (f" (zoo {versus})" if versus else ""), "-"])
for line in open(sys.argv[2]):
    check, result, seconds = line.rstrip("\n").split("\t")
    rows.append([check, "", result, seconds])
headers = ["check", "setting", "result", "seconds"]
widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows)]
print(f"Device check, machine kind {peers['kind']}; {peers['torch']}")
print("| " + " | ".join(header.ljust(width) for header, width in zip(headers, widths)) + " |")
print("|" + "|".join("-" * (width + 2) for width in widths) + "|")
for row in rows:
    print("| " + " | ".join(str(cell).ljust(width) for cell, width in zip(row, widths)) + " |")
EOF
cp BENCHMARKS.md "$OUT/BENCHMARKS.md"
echo "the table above is $OUT/device_check.md; BENCHMARKS.md (with its bench_peers_gpu section) and this log are in $OUT"
rm -rf "$WORK"
