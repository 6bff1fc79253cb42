"""`zoo doctor`, `zoo tune` and `zoo ensemble`: babysitting the learning process (CS231n).

The commands' work is in `finetune.cli.jobs.practice`, imported when one runs (see `finetune.cli`).
"""

from __future__ import annotations

import click

from finetune.cli.app import cli
from finetune.cli.training import training_options


@cli.command("doctor")
@click.argument("model")
@training_options
@click.option("--out", type=click.Path(file_okay=False), help="Report folder (default: runs/MODEL-doctor-N).")
@click.option("--overfit-examples", type=int, default=20, show_default=True,
              help="Examples the overfit test must memorize.")
@click.option("--overfit-steps", type=int, default=300, show_default=True, help="Step budget of the overfit test.")
@click.option("--lr-find-steps", type=int, default=100, show_default=True,
              help="Steps of the learning-rate range test (0: skip it).")
def doctor_command(model, out, overfit_examples, overfit_steps, lr_find_steps, **options):
    """Sanity checks before a long run: initial loss, initialization, gradient flow, activations,
    update/weight ratios, an overfit test and a learning-rate suggestion. Exits 1 if a check fails.

    \b
    Examples:
      zoo doctor lenet5
      zoo doctor resnet18 --data ./photos --lr 0.1 --optimizer sgd
    """
    from finetune.cli.jobs import practice  # the kit, and TensorFlow with it, load when the command runs

    practice.run_doctor(model, out, overfit_examples, overfit_steps, lr_find_steps, options)


@cli.command("tune")
@click.argument("model")
@training_options
@click.option("--trials", type=int, default=8, show_default=True, help="Training runs in all rounds together.")
@click.option("--rounds", type=int, default=2, show_default=True,
              help="Rounds of the search; each after the first narrows around the best trials so far.")
@click.option("--budget-epochs", type=int, help="Epochs per trial (default: --epochs).")
@click.option("--out", type=click.Path(file_okay=False), help="Search folder (default: runs/MODEL-tune-N); "
              "run again with the same folder to continue an interrupted search.")
@click.option("--folds", type=int, help="Judge each trial by k-fold cross-validation (its mean over K folds).")
def tune_command(model, trials, rounds, budget_epochs, out, folds, **options):
    """Random search (coarse to fine) over learning rate, weight decay, dropout, batch size,
    augmentation and optimizer, judged on the validation split. Writes DIR/best/config.json.

    \b
    Examples:
      zoo tune lenet5 --trials 8 --budget-epochs 5
      zoo finetune lenet5 --config runs/lenet5-tune-1/best/config.json
    """
    from finetune.cli.jobs import practice

    practice.run_tune(model, trials, rounds, budget_epochs, out, folds, options)


@cli.command("ensemble")
@click.argument("runs", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--data", help="Data spec to evaluate on (default: the runs' own data).")
@click.option("--split", type=click.Choice(["validation", "test"]), default="validation", show_default=True)
@click.option("--batch-size", type=int, default=64, show_default=True)
@click.option("--max-examples", type=int, help="Use at most this many examples per split.")
@click.option("--out", type=click.Path(file_okay=False), help="The ensemble's run folder (default: runs/ensemble-N).")
@click.option("--export", "export_base", type=click.Path(file_okay=False),
              help="Also export the ensemble as one SavedModel under this TF Serving base folder.")
@click.option("--name", help="The exported model's name (default: the ensemble folder's).")
def ensemble_command(runs, data, split, batch_size, max_examples, out, export_base, name):
    """Average the predicted probabilities of several RUNS (run folders); report each run's and the
    ensemble's accuracy, and leave the ensemble as a run folder (and a SavedModel with --export).

    \b
    Examples:
      zoo ensemble runs/lenet5-1 runs/lenet5-2 runs/lenet5-3
      zoo ensemble runs/a runs/b --split test --export serving
    """
    from finetune.cli.jobs import practice

    practice.run_ensemble(runs, data, split, batch_size, max_examples, out, export_base, name)
