"""The work of `zoo doctor`, `zoo tune` and `zoo ensemble` (declared in `finetune.cli.practice`)."""

from __future__ import annotations

import click

from finetune.api import next_run_folder
from finetune.cli.jobs.training import build_config
from finetune.practice.doctor import FAIL, doctor
from finetune.practice.ensemble import ensemble
from finetune.practice.tune import tune
from finetune.serving.export import export_model
from finetune.training.runfolder import prepare
from zoo.errors import ZooError


def run_doctor(model, out, overfit_examples, overfit_steps, lr_find_steps, options):
    """`zoo doctor MODEL`: the checks' report; a failed check is an error."""
    config = build_config(model, options)
    if overfit_examples < 1 or overfit_steps < 1 or lr_find_steps < 0:
        raise ZooError("--overfit-examples and --overfit-steps must be positive, --lr-find-steps >= 0")
    out = prepare(out or next_run_folder(f"{config.model}-doctor"), resumable=False)
    report = doctor(config, out, overfit_examples=overfit_examples, overfit_steps=overfit_steps,
                    lr_find_steps=lr_find_steps)
    for line in report.lines():
        click.echo(line)
    failed = [check.name for check in report.checks if check.status == FAIL]
    if failed:
        raise ZooError(f"{len(failed)} check(s) failed ({', '.join(failed)}): see the advice above")



def run_tune(model, trials, rounds, budget_epochs, out, folds, options):
    """`zoo tune MODEL`: the search, and how to train its best config in full."""
    config = build_config(model, options)
    if budget_epochs is not None and budget_epochs < 1:
        raise ZooError("--budget-epochs must be at least 1")
    out = out or next_run_folder(f"{config.model}-tune")
    result = tune(config, out, trials=trials, rounds=rounds, budget_epochs=budget_epochs, folds=folds)
    if result.best is None:
        raise ZooError(f"every trial failed (see {out}/results.csv): lower --lr and run zoo doctor")
    click.echo(f"Results: {out}/results.csv, {out}/results.png. Train it in full with:\n"
               f"  zoo finetune {config.model} --config {out}/best/config.json")



def run_ensemble(runs, data, split, batch_size, max_examples, out, export_base, name):
    """`zoo ensemble RUNS`: each run's and the ensemble's accuracy, its run folder and export."""
    out = out or next_run_folder("ensemble")
    result = ensemble(runs, out, data=data, split=split, batch_size=batch_size, max_examples=max_examples)
    width = max(len(member["source"]) for member in result.members)
    click.echo(f"{split} accuracy:")
    for member in result.members:
        click.echo(f"  {member['source']:{width}}  {member['accuracy']:.4f}")
    click.echo(f"  {'ensemble':{width}}  {result.ensemble['accuracy']:.4f}  ({result.gain:+.4f} over the runs' mean)")
    click.echo(f"Ensemble run folder: {out}")
    if export_base:
        click.echo(f"Exported to {export_model(out, export_base, name=name)}")
