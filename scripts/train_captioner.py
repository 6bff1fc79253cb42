"""The measured captioning run: Show and Tell on builtin:zoo_shape_captions, LSTM and GRU.

Target: BLEU-4 >= 0.5 on the held-out split in under 20 minutes each on 2 CPU cores, with beam
search scoring at least as well as greedy search. Prints one table of BLEU-1..4 (greedy, beam),
times and sample captions, and writes summary.json beside the run folders.

    nice -n 10 python scripts/train_captioner.py --out runs/captioner-measured
    python scripts/train_captioner.py --quick          # a two-minute smoke run of the same code
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from finetune.captioning import train_captioner  # noqa: E402

TIME_LIMIT_SECONDS = 20 * 60
TARGET_BLEU4 = 0.5

# The measured configuration: a frozen, randomly initialized VGG-11 at 64x64 (no pretrained
# weights offline) whose pooled features are computed once, and a one-layer decoder.
SETTINGS = dict(
    backbone="vgg11", image_size=64, train_encoder=False, encoder_pooling="avg",
    embedding_dim=256, units=256, num_layers=1, dropout=0.3,
    epochs=12, batch_size=64, lr=2e-3, lr_schedule="cosine", clip_norm=5.0,
    beam_width=3, seed=0, num_samples=12,
)
QUICK = dict(epochs=2, max_examples=300, num_samples=4)


def run(rnn: str, out: Path, data: str, overrides: dict) -> dict:
    if out.exists():
        shutil.rmtree(out)
    started = time.perf_counter()
    metrics = train_captioner(data=data, rnn=rnn, out=out, verbose=2, **{**SETTINGS, **overrides})
    metrics["wall_seconds"] = round(time.perf_counter() - started, 1)
    return metrics


def table(results: dict) -> str:
    header = ["rnn", "search", "BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "train s", "wall s"]
    rows = []
    for rnn, metrics in results.items():
        for search in ("greedy", "beam"):
            scores = metrics[search]
            label = search if search == "greedy" else f"beam {metrics['beam_width']}"
            rows.append([rnn, label, *(f"{scores[f'bleu{n}']:.3f}" for n in range(1, 5)),
                         f"{metrics['training_seconds']:.0f}", f"{metrics['wall_seconds']:.0f}"])
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(header, widths))]
    lines.append("  ".join("-" * width for width in widths))
    lines += ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)) for row in rows]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/captioner-measured"))
    parser.add_argument("--data", default="builtin:zoo_shape_captions")
    parser.add_argument("--rnn", choices=["lstm", "gru"], action="append", help="default: both")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--backbone", help=f"default {SETTINGS['backbone']} (for comparisons)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 2 epochs on 300 images")
    args = parser.parse_args()

    overrides = dict(QUICK) if args.quick else {}
    if args.epochs:
        overrides["epochs"] = args.epochs
    if args.backbone:
        overrides["backbone"] = args.backbone
    results = {}
    for rnn in args.rnn or ["lstm", "gru"]:
        results[rnn] = run(rnn, args.out / rnn, args.data, overrides)

    print()
    print(f"Show and Tell on {args.data}, held-out split "
          f"({next(iter(results.values()))['images']} images); settings: {json.dumps({**SETTINGS, **overrides})}")
    print(table(results))
    passed = True
    for rnn, metrics in results.items():
        checks = {
            f"BLEU-4 >= {TARGET_BLEU4}": max(metrics["greedy"]["bleu4"], metrics["beam"]["bleu4"]) >= TARGET_BLEU4,
            "under 20 minutes": metrics["wall_seconds"] < TIME_LIMIT_SECONDS,
            "beam >= greedy (BLEU-4)": metrics["beam"]["bleu4"] >= metrics["greedy"]["bleu4"],
        }
        passed &= all(checks.values())
        print(f"{rnn}: " + ", ".join(f"{name}: {'yes' if ok else 'NO'}" for name, ok in checks.items()))
        for sample in metrics["samples"][:4]:
            print(f"  beam: {sample['beam']!r}  greedy: {sample['greedy']!r}  reference: {sample['references'][0]!r}")
    summary = {rnn: {key: value for key, value in metrics.items()} for rnn, metrics in results.items()}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return 0 if passed or args.quick else 1


if __name__ == "__main__":
    sys.exit(main())
