"""k-fold cross-validation (the course notes: "if the lack of training data is a concern, use
cross-validation": split the training data into k folds, validate on each in turn, average).

A cross-validation folder holds one run folder per fold (`fold-1/` ... `fold-K/`, each a whole
fine-tuning run validating on its fold; the folds are stratified and seeded, the test split never
takes part) and `folds.json`: its settings, and every validation metric's mean and spread over the
folds. Running it
again on the same folder continues: finished folds are read back, an interrupted one resumes.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from finetune import files
from finetune.training.classification import finetune
from finetune.training.config import FinetuneConfig
from finetune.training.runfolder import check_writable
from zoo.errors import ZooError

SUMMARY = "folds.json"
METRICS = ("accuracy", "loss", "top5_accuracy")


def fold_folder(out: Path, fold: int) -> Path:
    return out / f"fold-{fold + 1}"


def summarize(per_fold: list[dict]) -> dict:
    """Mean, standard deviation (over folds, ddof=0), min and max of each validation metric."""
    summary = {}
    for name in METRICS:
        values = [metrics[name] for metrics in per_fold if name in metrics]
        if values:
            summary[name] = {"mean": float(np.mean(values)), "std": float(np.std(values)),
                             "min": float(np.min(values)), "max": float(np.max(values))}
    return summary


@dataclasses.dataclass
class CrossValidation:
    folds: int
    per_fold: list[dict]  # each fold's validation metrics
    summary: dict  # metric -> mean, std, min, max
    out: Path

    def line(self, metric: str = "accuracy") -> str:
        values = self.summary[metric]
        return f"{metric} {values['mean']:.4f} ± {values['std']:.4f} over {self.folds} folds"


def _start_or_continue(out: Path, settings: dict) -> None:
    """The folder is new, or holds a cross-validation with the same settings (which it continues)."""
    saved = out / SUMMARY
    if saved.is_file():
        try:
            previous = json.loads(saved.read_text(encoding="utf8")).get("settings")
        except (OSError, ValueError) as error:
            raise ZooError(f"cannot read {saved}: {error}") from None
        if previous != json.loads(json.dumps(settings)):
            raise ZooError(f"{out} holds a cross-validation with other settings; pick another --out to start anew")
    elif out.is_dir() and any(out.iterdir()):
        raise ZooError(f"{out} holds something other than a cross-validation; pick another --out")
    else:
        files.write_json(saved, {"settings": settings})


def cross_validate(config: FinetuneConfig, out, folds: int, verbose: int = 1) -> CrossValidation:
    """Trains `config` once per fold into out/fold-N and summarizes the folds' validation metrics."""
    if folds < 2:
        raise ZooError(f"cross-validation needs at least 2 folds, got {folds}")
    config = dataclasses.replace(config, folds=None, fold=None).validate()
    out = Path(out)
    check_writable(out, "the cross-validation")
    settings = {**config.to_dict(), "folds": folds}
    _start_or_continue(out, settings)
    per_fold = []
    for fold in range(folds):
        folder = fold_folder(out, fold)
        metrics_file = folder / files.METRICS
        if not metrics_file.is_file():
            if verbose:
                print(f"Fold {fold + 1}/{folds}")
            resume = (folder / files.CONFIG).is_file()
            fold_config = None if resume else dataclasses.replace(config, folds=folds, fold=fold)
            finetune(fold_config, out=folder, resume=resume, verbose=verbose)
        per_fold.append(json.loads(metrics_file.read_text(encoding="utf8"))["validation"])
    summary = summarize(per_fold)
    files.write_json(out / SUMMARY, {"settings": settings, "folds": folds, "per_fold": per_fold, "summary": summary})
    result = CrossValidation(folds, per_fold, summary, out)
    if verbose:
        print(f"Cross-validation: {result.line()}; folds in {out}")
    return result
