"""`zoo tune`: random search over the hyperparameters, coarse to fine (Bergstra & Bengio 2012; the
CS231n notes: random rather than grid search, log scales for rates, narrow around the best).

Why not KerasTuner's RandomSearch: a trial here is a whole `finetune()` run, with its own run folder
(curves, best.keras, resume after a kill), the project's training loop and tf.distribute strategy;
KerasTuner wants a `build(hp)` model and drives `fit` itself. And coarse-to-fine (a second round
sampled from a space narrowed around the first round's best) is not something RandomSearch does.

Trials are judged on the validation split (the final model's validation accuracy), never the test
split. Every trial uses the base config's seed, so all see the same split and the same draws.

Layout of DIR::

    tune.json          the search settings and the best trial (written at the end)
    results.csv        one row per trial: round, hyperparameters, validation accuracy and loss
    results.png        validation accuracy against learning rate
    trials/NNN/        each trial's run folder
    best/config.json   the best trial's config, at the base config's epochs:
                       `zoo finetune MODEL --config DIR/best/config.json`
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path

import keras
import numpy as np

from finetune import files
from finetune.practice.folds import cross_validate
from finetune.training.classification import finetune
from finetune.training.config import FinetuneConfig
from finetune.training.loop import LossDiverged
from finetune.training.plots import plt, save_figure
from finetune.training.runfolder import check_writable, write_history
from zoo.errors import ZooError


@dataclasses.dataclass(frozen=True)
class LogUniform:
    """Values whose order of magnitude matters (learning rates, weight decay)."""

    low: float
    high: float

    def sample(self, rng) -> float:
        return float(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))

    def narrowed(self, values, padding: float) -> "LogUniform":
        """The span of `values`, padded by `padding` of this range's width (in log space) each side."""
        logs = [math.log(value) for value in values]
        pad = padding * (math.log(self.high) - math.log(self.low))
        return LogUniform(math.exp(max(math.log(self.low), min(logs) - pad)),
                          math.exp(min(math.log(self.high), max(logs) + pad)))

    def describe(self) -> str:
        return f"log-uniform [{self.low:.2g}, {self.high:.2g}]"


@dataclasses.dataclass(frozen=True)
class Uniform:
    low: float
    high: float

    def sample(self, rng) -> float:
        return float(rng.uniform(self.low, self.high))

    def narrowed(self, values, padding: float) -> "Uniform":
        pad = padding * (self.high - self.low)
        return Uniform(max(self.low, min(values) - pad), min(self.high, max(values) + pad))

    def describe(self) -> str:
        return f"uniform [{self.low:.2g}, {self.high:.2g}]"


@dataclasses.dataclass(frozen=True)
class Choice:
    values: tuple

    def sample(self, rng):
        value = self.values[int(rng.integers(len(self.values)))]
        return value.item() if hasattr(value, "item") else value

    def narrowed(self, values, padding: float) -> "Choice":
        """The choices the best trials made, in the original order."""
        return Choice(tuple(value for value in self.values if value in set(values)))

    def describe(self) -> str:
        return "one of " + ", ".join(str(value) for value in self.values)


# The search space: FinetuneConfig fields and their distributions.
DEFAULT_SPACE = {
    "lr": LogUniform(1e-4, 3e-2),
    "weight_decay": LogUniform(1e-5, 1e-1),
    "dropout": Uniform(0.0, 0.5),
    "batch_size": Choice((16, 32, 64, 128)),
    "augment": Choice(("none", "light", "standard")),
    "optimizer": Choice(("adam", "adamw", "sgd")),
}
BEST_FRACTION = 1 / 3  # the next round narrows around the best third of the trials so far
NEAR_BEST = 0.9  # ... among those, the ones within 10% of the best's validation accuracy
PADDING = 0.125  # ... padded by an eighth of the first round's range on each side


def sample(space: dict, rng) -> dict:
    return {name: dimension.sample(rng) for name, dimension in space.items()}


def narrow(space: dict, best: list[dict]) -> dict:
    """The space around the best trials' values: numeric ranges shrink to their span (padded),
    choices to the values they chose."""
    return {name: dimension.narrowed([trial[name] for trial in best], PADDING) for name, dimension in space.items()}


def ranked(results: list[dict]) -> list[dict]:
    """Completed trials, best first: by validation accuracy, then lower validation loss."""
    done = [row for row in results if row["status"] == "done"]
    return sorted(done, key=lambda row: (-row["val_accuracy"], row["val_loss"]))


def best_trials(results: list[dict]) -> list[dict]:
    """The trials the next round narrows around: the best third, less any far behind the best (a
    trial at half the best accuracy would stretch the ranges back over what failed)."""
    order = ranked(results)[: max(1, math.ceil(BEST_FRACTION * len(results)))]
    return [row for row in order if row["val_accuracy"] >= NEAR_BEST * order[0]["val_accuracy"]]


def round_sizes(trials: int, rounds: int) -> list[int]:
    """`trials` split over `rounds` as evenly as possible, the coarse round taking any remainder."""
    base, extra = divmod(trials, rounds)
    return [base + (1 if index < extra else 0) for index in range(rounds)]


@dataclasses.dataclass
class TuneResult:
    results: list[dict]
    best: dict | None
    best_config: FinetuneConfig | None
    out: Path


def tune(config: FinetuneConfig, out, *, trials: int = 8, rounds: int = 2, budget_epochs: int | None = None,
         space: dict | None = None, verbose: int = 1, folds: int | None = None) -> TuneResult:
    """Random search over `space` (default DEFAULT_SPACE) around `config`, in `rounds` rounds of
    `trials` in all; each trial trains `budget_epochs` (default config.epochs) epochs. With `folds`,
    each trial is a k-fold cross-validation (`finetune.practice.folds`), ranked by its mean.

    Running it again on the same `out` with the same settings continues where it stopped: finished
    trials are read back, an interrupted one resumes from its last epoch.
    """
    config.validate()
    if trials < 1 or rounds < 1 or rounds > trials:
        raise ZooError(f"need at least one trial per round: --trials {trials}, --rounds {rounds}")
    space = dict(space or DEFAULT_SPACE)
    unknown = set(space) - {field.name for field in dataclasses.fields(FinetuneConfig)}
    if unknown:
        raise ZooError(f"not settings of a fine-tuning run: {', '.join(sorted(unknown))}")
    epochs = budget_epochs or config.epochs
    out = Path(out)
    if folds is not None and folds < 2:
        raise ZooError(f"--folds must be at least 2, got {folds}")
    settings = {"base": config.to_dict(), "trials": trials, "rounds": rounds, "budget_epochs": epochs,
                "space": {name: dimension.describe() for name, dimension in space.items()}, "folds": folds}
    _start_or_continue(out, settings)

    results: list[dict] = []
    current = space
    number = 0
    for round_index, size in enumerate(round_sizes(trials, rounds)):
        if round_index:
            best = best_trials(results)
            if not best:
                raise ZooError("every trial of the first round failed: narrow the space by hand "
                               "(a lower --lr, say) and run zoo doctor")
            current = narrow(space, best)
        if verbose:
            print(f"Round {round_index + 1}/{rounds}: " + "; ".join(
                f"{name} {dimension.describe()}" for name, dimension in current.items()))
        rng = np.random.default_rng([config.seed, round_index])
        for _ in range(size):
            number += 1
            params = sample(current, rng)
            row = _trial(config, params, epochs, out / "trials" / f"{number:03d}", number, round_index + 1, folds)
            results.append(row)
            write_history(out / "results.csv", results)
            if verbose:
                print(f"  trial {number}/{trials}: {describe(params)} -> " + (
                    f"validation accuracy {row['val_accuracy']:.4f} ({row['seconds']:.0f}s)"
                    if row["status"] == "done" else row["status"]))
    plot_results(results, out / "results.png")

    order = ranked(results)
    best = order[0] if order else None
    best_config = None
    if best is not None:
        best_config = dataclasses.replace(config, **{name: best[name] for name in space}, epochs=config.epochs)
        best_config.save(out / "best" / files.CONFIG)
    settings["best"] = best
    files.write_json(out / "tune.json", settings)
    if verbose and best is not None:
        print(f"Best: trial {best['trial']} ({describe(best)}), validation accuracy {best['val_accuracy']:.4f}; "
              f"its config: {out / 'best' / files.CONFIG}")
    return TuneResult(results, best, best_config, out)


def describe(params: dict) -> str:
    parts = []
    for name in DEFAULT_SPACE:
        if name in params:
            value = params[name]
            parts.append(f"{name} {value:.2g}" if isinstance(value, float) else f"{name} {value}")
    return ", ".join(parts)


def _start_or_continue(out: Path, settings: dict) -> None:
    saved = out / "tune.json"
    check_writable(out, "the search")
    if out.is_dir() and any(out.iterdir()):
        if not saved.is_file():
            raise ZooError(f"{out} holds something other than a search; pick another --out")
        previous = json.loads(saved.read_text())
        if {key: previous.get(key) for key in settings} != json.loads(json.dumps(settings)):
            raise ZooError(f"{out} holds a search with other settings; pick another --out to start a new one")
    out.mkdir(parents=True, exist_ok=True)
    files.write_json(saved, settings)


def _trial(base: FinetuneConfig, params: dict, epochs: int, folder: Path, number: int, round_number: int,
           folds: int | None = None) -> dict:
    """One trial: a whole fine-tuning run (or cross-validation) in its own folder, or its result
    read back when done."""
    config = dataclasses.replace(base, epochs=epochs, **params).validate()
    row = {"trial": number, "round": round_number, **{name: getattr(config, name) for name in DEFAULT_SPACE},
           **params, "val_accuracy": math.nan, "val_loss": math.nan, "epochs": epochs, "seconds": 0.0,
           "status": "done", "folder": str(folder)}
    if folds:
        started = time.perf_counter()
        keras.backend.clear_session()
        try:
            result = cross_validate(config, folder, folds, verbose=0)
        except ZooError as error:
            row.update(status=f"failed: {error}", seconds=time.perf_counter() - started)
            return row
        row.update(val_accuracy=result.summary["accuracy"]["mean"], val_loss=result.summary["loss"]["mean"],
                   val_accuracy_std=result.summary["accuracy"]["std"], seconds=time.perf_counter() - started)
        return row
    metrics_file = folder / files.METRICS
    if not metrics_file.is_file():
        resume = (folder / files.CONFIG).is_file()
        keras.backend.clear_session()  # each trial builds a new model: free the last one's graphs
        started = time.perf_counter()
        try:
            finetune(config if not resume else None, out=folder, resume=resume, verbose=0)
        except LossDiverged as error:  # a diverging trial is a result too: that region is too hot
            # (any other error, bad data say, fails every trial alike: it stops the search)
            row.update(status=f"failed: {error}", seconds=time.perf_counter() - started)
            return row
        row["seconds"] = time.perf_counter() - started
    metrics = json.loads(metrics_file.read_text())
    row.update(val_accuracy=metrics["validation"]["accuracy"], val_loss=metrics["validation"]["loss"])
    return row


def plot_results(results: list[dict], path) -> None:
    """Validation accuracy against learning rate, one marker per round, one colour per optimizer."""
    figure, axis = plt.subplots(figsize=(7, 4.5))
    done = [row for row in results if row["status"] == "done"]
    colours = {name: f"C{index}" for index, name in enumerate(sorted({row["optimizer"] for row in results
                                                                       if "optimizer" in row}))}
    for round_number, marker in zip(sorted({row["round"] for row in done}), "os^Dv"):
        for row in (row for row in done if row["round"] == round_number):
            axis.scatter(row["lr"], row["val_accuracy"], marker=marker, color=colours.get(row.get("optimizer"), "C0"))
    for name, colour in colours.items():
        axis.scatter([], [], color=colour, label=name)
    for round_number, marker in zip(sorted({row["round"] for row in done}), "os^Dv"):
        axis.scatter([], [], marker=marker, color="gray", label=f"round {round_number}")
    axis.set_xscale("log")
    axis.set_xlabel("learning rate")
    axis.set_ylabel("validation accuracy")
    axis.grid(alpha=0.3)
    if colours or done:
        axis.legend(fontsize=8)
    save_figure(figure, path)
