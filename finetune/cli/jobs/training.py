"""The work of `zoo finetune`, `zoo evaluate` and `zoo lr-find` (declared in `finetune.cli.training`)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import click

import zoo
from finetune import api
from finetune.practice.folds import cross_validate
from finetune.practice.lr_find import lr_find
from finetune.serving.batch import predict_data, summary
from finetune.training import plots
from finetune.training.classification import finetune as train_classifier
from finetune.training.config import FinetuneConfig
from finetune.training.runfolder import check_writable
from zoo.errors import ZooError


def given_settings(options: dict, model: str | None = None) -> dict:
    """The FinetuneConfig settings the command line gave (options left out are not settings)."""
    options = dict(options)
    options.pop("config_file", None)
    norm = options.pop("norm", None)
    if norm is not None:
        options["model_options"] = {"norm": norm}
        if model is not None and "norm" not in zoo.info(model).options:
            takers = [name for name in zoo.list_models() if "norm" in zoo.info(name).options]
            raise ZooError(f"--norm replaces batch normalization, which {model} does not have; the models that take "
                           f"it: {', '.join(takers)}")
    if options.pop("no_download", None):
        options["download"] = False
    if options.get("channels"):
        options["channels"] = int(options["channels"])
    fields = {field.name for field in dataclasses.fields(FinetuneConfig)}
    return {key: value for key, value in options.items() if value is not None and key in fields}


def build_config(model: str | None, options: dict):
    """A FinetuneConfig from a --config file and the options given on the command line."""
    config_file = options.get("config_file")
    config = FinetuneConfig.load(config_file) if config_file else FinetuneConfig()
    settings = given_settings(options, model or config.model)
    if model:
        settings["model"] = model
    if "model_options" in settings:
        settings["model_options"] = {**config.model_options, **settings["model_options"]}
    return dataclasses.replace(config, **settings).validate()


def finetune(model, out, resume, quiet, backbone, rnn, folds, options):
    """`zoo finetune MODEL`: a classifier's run (or K of them with --folds), or the captioner's."""
    if model == api.CAPTIONER:
        if folds:
            raise ZooError("--folds applies to classifiers: a captioner is judged by BLEU on its held-out split")
        _finetune_captioner(out, resume, quiet, backbone, rnn, options)
        return
    if folds is not None:
        _cross_validate(model, out, resume, quiet, folds, options)
        return
    if backbone or rnn:
        raise ZooError("--backbone and --rnn apply to `zoo finetune captioner` only")
    if resume:
        if out is None:
            raise ZooError("--resume needs --out, the run folder to continue")
        if options.get("config_file"):
            raise ZooError("--resume continues with the run's own config.json; leave out --config")
        config, changes = FinetuneConfig.load(out).resumed_with({"model": model, **given_settings(options, model)})
        if not quiet:
            changed = "".join(f", {key}={value}" for key, value in changes.items())
            click.echo(f"Resuming {out} ({config.model}, {config.mode}{changed})")
        train_classifier(config, out=out, resume=True, verbose=0 if quiet else 1)
        return
    config = build_config(model, options)
    out = Path(out) if out is not None else api.next_run_folder(config.model)
    if config.mode == "predict":
        rows = predict_data(config, out=out)
        click.echo(f"Wrote {len(rows)} predictions to {out / 'predictions.csv'} and predictions.json; {summary(rows)}")
        return
    if not quiet:
        data = config.data or (str(Path(config.labels).parent) if config.labels else "builtin:zoo_shapes")
        click.echo(f"Fine-tuning {config.model} ({config.mode}) on {data} into {out}")
    train_classifier(config, out=out, verbose=0 if quiet else 1)


def _cross_validate(model, out, resume, quiet, folds, options):
    """`zoo finetune --folds K`: one run per fold in OUT/fold-N, continued by running it again."""
    config = build_config(model, options)
    if config.mode == "predict":
        raise ZooError("--folds cross-validates training: it does not go with --mode predict")
    if resume and out is None:
        raise ZooError("--resume needs --out, the cross-validation folder to continue")
    out = Path(out) if out is not None else api.next_run_folder(f"{config.model}-cv")
    if not quiet:
        click.echo(f"Cross-validating {config.model} on {folds} folds of {config.data or 'builtin:zoo_shapes'} "
                   f"into {out}")
    result = cross_validate(config, out, folds, verbose=0 if quiet else 1)
    for metric, values in result.summary.items():
        click.echo(f"{metric:>16}  {values['mean']:.4f} ± {values['std']:.4f}  "
                   f"(min {values['min']:.4f}, max {values['max']:.4f})")


# `zoo finetune captioner` options and the captioner trainer's arguments they set
CAPTIONER_OPTIONS = {"data": "data", "epochs": "epochs", "batch_size": "batch_size", "lr": "lr", "seed": "seed",
                     "image_size": "image_size", "weights": "backbone_weights", "max_examples": "max_examples",
                     "data_dir": "data_dir", "dropout": "dropout", "clip_norm": "clip_norm"}


def _finetune_captioner(out, resume, quiet, backbone, rnn, options):
    """The captioner trains on the same run machinery: same run folder, resume and TensorBoard."""
    given = {key for key, value in options.items() if value not in (None, False)} - {"config_file"}
    unsupported = given - set(CAPTIONER_OPTIONS) - {"no_download"}
    if unsupported:
        flags = ", ".join("--" + key.replace("_", "-") for key in sorted(unsupported))
        raise ZooError(f"{flags}: not options of `zoo finetune captioner`")
    arguments = {CAPTIONER_OPTIONS[key]: options[key] for key in given & set(CAPTIONER_OPTIONS)}
    if backbone:
        arguments["backbone"] = backbone
    if rnn:
        arguments["rnn"] = rnn
    if options.get("no_download"):
        arguments["download"] = False
    if resume and out is None:
        raise ZooError("--resume needs --out, the run folder to continue")
    out = Path(out) if out is not None else api.next_run_folder(api.CAPTIONER)
    if not quiet:
        click.echo(f"{'Resuming' if resume else 'Training'} the captioner in {out}")
    result = api.finetune(api.CAPTIONER, out=out, resume=resume, verbose=0 if quiet else 1, **arguments)
    if not quiet:
        click.echo(json.dumps(result.metrics, indent=2, default=str))


def evaluate(source, data, split, batch_size, max_examples, as_json, eval_resize=None, eval_crop=None):
    """`zoo evaluate SOURCE`: the metrics, as a table or JSON."""
    if (eval_resize is not None or eval_crop is not None) and api.task_of(source) == api.CAPTIONING:
        raise ZooError("--eval-resize and --eval-crop apply to classifiers")
    metrics = api.evaluate(source, data, split=split, batch_size=batch_size, max_examples=max_examples,
                           eval_resize=eval_resize, eval_crop=eval_crop)
    if as_json:
        click.echo(json.dumps(metrics, indent=2, default=str))
        return
    for key, value in metrics.items():
        if key == "samples":
            continue
        click.echo(f"{key:>16}  {value:.4f}" if isinstance(value, float) else f"{key:>16}  {value}")



def find_learning_rate(model, steps, start_lr, end_lr, plot, options):
    """`zoo lr-find MODEL`: the range test, its suggestion and its plot."""
    if not 0 < start_lr < end_lr:
        raise ZooError(f"the range runs from --start-lr up to --end-lr: need 0 < start < end, got {start_lr:g} "
                       f"and {end_lr:g}")
    if steps < 5:
        raise ZooError(f"--steps must be at least 5 for the test to suggest a rate, got {steps}")
    check_writable(Path(plot).parent, "the plot")
    config = build_config(model, options)
    result = lr_find(config, steps=steps, start_lr=start_lr, end_lr=end_lr)
    if result.suggestion is None:
        raise ZooError("the loss diverged straight away; lower --start-lr or check the data")
    click.echo(f"Suggested learning rate: {result.suggestion:.2g} (steepest descent of the loss; "
               f"minimum at {result.minimum_loss_lr:.2g}).")
    plots.learning_rate_finder(result.learning_rates, result.losses, result.suggestion, plot)
    click.echo(f"Plot: {plot}")
