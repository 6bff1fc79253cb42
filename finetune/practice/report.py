"""The doctor's report: its verdicts as text and JSON, and the plots of what it measured."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

from finetune import files
from finetune.practice.checks import Check, worst
from finetune.training import plots
from finetune.training.plots import plt, save_figure


@dataclasses.dataclass
class Report:
    model: str
    data: str
    num_classes: int
    checks: list[Check]
    out: Path | None = None

    @property
    def status(self) -> str:
        return worst(check.status for check in self.checks)

    def to_dict(self) -> dict:
        """Plain JSON: non-finite numbers (a diverged loss, the ratio of zero weights) as strings."""
        return _json_safe({"model": self.model, "data": self.data, "num_classes": self.num_classes,
                           "status": self.status, "checks": [check.to_dict() for check in self.checks]})

    def lines(self) -> list[str]:
        lines = [f"Doctor: {self.model} on {self.data} ({self.num_classes} classes)"]
        width = max(len(check.name) for check in self.checks)
        for check in self.checks:
            lines.append(f"  {check.status.upper():4}  {check.name:{width}}  {check.summary}")
            lines.append(f"        {'':{width}}  -> {check.advice}")
        lines.append(f"Overall: {self.status.upper()}" + (f"; report and plots in {self.out}" if self.out else ""))
        return lines


def _json_safe(value):
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def write_report(report: Report, measured: dict, range_test=None) -> None:
    out = report.out
    out.mkdir(parents=True, exist_ok=True)
    files.write_json(out / "doctor.json", report.to_dict())
    plot_activations(measured["activations"], out / "activations.png")
    plot_layers(measured["gradient_norms"], measured["update_ratios"], out / "gradients.png")
    plot_overfit(measured["overfit_losses"], out / "overfit.png")
    if range_test is not None and range_test.learning_rates:
        plots.learning_rate_finder(range_test.learning_rates, range_test.losses, range_test.suggestion,
                                   out / "lr_find.png")


def plot_activations(statistics: list, path) -> None:
    """CS231n's initialization demo: the mean and std of each layer's outputs, then one histogram
    per layer, so a collapsing (too small) or saturating (too large) initialization shows."""
    count = max(len(statistics), 1)
    columns = min(count, 8)
    rows = 1 + -(-count // columns)
    figure = plt.figure(figsize=(2.2 * columns + 2, 2.2 * rows))
    grid = figure.add_gridspec(rows, columns)
    for column, (field, title) in enumerate((("mean", "layer mean"), ("std", "layer std"))):
        axis = figure.add_subplot(grid[0, column * columns // 2:(column + 1) * columns // 2])
        axis.plot([getattr(s, field) for s in statistics], marker="o")
        axis.set_xticks(range(len(statistics)), [s.path.split("/")[-1] for s in statistics], fontsize=7)
        axis.set_title(title)
    for index, layer in enumerate(statistics):
        axis = figure.add_subplot(grid[1 + index // columns, index % columns])
        axis.hist(layer.values, bins=30)
        axis.set_title(f"{layer.path.split('/')[-1]} ({layer.activation})", fontsize=8)
        axis.tick_params(labelsize=6)
    figure.tight_layout()
    save_figure(figure, path)


def plot_layers(gradient_norms: dict, update_ratios: dict, path) -> None:
    """Per-layer gradient norms and update/weight ratios on log scales, with the 1e-3 guide."""
    figure, axes = plt.subplots(1, 2, figsize=(12, 4))
    panels = ((axes[0], gradient_norms, "gradient norm"), (axes[1], update_ratios, "update / weight"))
    for axis, values, title in panels:
        names = list(values)
        heights = [max(value, 1e-30) if math.isfinite(value) else 1e30 for value in values.values()]
        axis.bar(range(len(names)), heights)
        axis.set_yscale("log")
        axis.set_xticks(range(len(names)), [name.split("/")[-1] for name in names], rotation=90, fontsize=7)
        axis.set_title(title)
    axes[1].axhline(1e-3, color="red", linestyle="--", label="1e-3")
    axes[1].legend()
    save_figure(figure, path)


def plot_overfit(losses: list[float], path) -> None:
    figure, axis = plt.subplots(figsize=(5, 3.5))
    axis.plot(range(len(losses)), losses)
    axis.set_yscale("log")
    axis.set_xlabel("step")
    axis.set_ylabel("training loss")
    axis.set_title("overfitting a small subset")
    axis.grid(alpha=0.3)
    save_figure(figure, path)
