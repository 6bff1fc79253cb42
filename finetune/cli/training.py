"""`zoo finetune`, `zoo evaluate` and `zoo lr-find`: the fine-tuning layer on the command line."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import click

import zoo
from finetune import api
from finetune.cli.app import cli
from finetune.data.augment import PRESETS
from finetune.practice.folds import cross_validate
from finetune.practice.lr_find import lr_find
from finetune.serving.batch import predict_data, summary
from finetune.training import plots
from finetune.training.classification import finetune as train_classifier
from finetune.training.config import FinetuneConfig
from finetune.training.runfolder import check_writable
from zoo.errors import ZooError
from zoo.registry import NORMALIZATIONS

AUGMENT_PRESETS = ("auto", *PRESETS)


def training_options(function):
    """The options `zoo finetune`, `zoo lr-find`, `zoo doctor` and `zoo tune` share."""
    options = [
        click.option("--data", help="Data spec: tfds:NAME[/CONFIG][:SPLIT], a folder, or builtin:NAME "
                                    "(default: the built-in shapes)."),
        click.option("--labels", help="A CSV of image file names and labels, for a --data folder of images "
                                      "without class subfolders (labels.csv or train.csv there is found by itself)."),
        click.option("--mode", type=click.Choice(["predict", "head", "full"]), help="predict: no training, top-k "
                     "predictions of --weights on --data; head: train only a new classifier on the frozen backbone; "
                     "full: train everything (default)."),
        click.option("--epochs", type=int, help="Epochs to train."),
        click.option("--batch-size", type=int, help="Batch size per replica."),
        click.option("--image-size", type=int, help="Input height and width (default: the model's)."),
        click.option("--channels", type=click.Choice(["1", "3"]), help="Input channels (default: the model's)."),
        click.option("--lr", type=float, help="Learning rate of the head (the backbone's is scaled by "
                                             "--backbone-lr-scale)."),
        click.option("--optimizer", type=click.Choice(["sgd", "adam", "adamw", "rmsprop"])),
        click.option("--schedule", type=click.Choice(["constant", "step", "exponential", "cosine"])),
        click.option("--warmup-epochs", type=float, help="Linear warmup length in epochs."),
        click.option("--weight-decay", type=float, help="Decoupled weight decay."),
        click.option("--label-smoothing", type=float),
        click.option("--dropout", type=float, help="Dropout before the new classifier."),
        click.option("--clip-norm", type=float, help="Clip each gradient to this norm."),
        click.option("--backbone-lr-scale", type=float, help="Full mode: backbone lr = lr x this (default 0.1)."),
        click.option("--head-epochs", type=int, help="Full mode: train the head alone for this many epochs first."),
        click.option("--unfreeze-from", help="Full mode: unfreeze the backbone from this layer (prefix) on."),
        click.option("--early-stopping", type=int, help="Stop after this many epochs without validation gain."),
        click.option("--weights", help="Initial weights: a tag of the model (imagenet, tv_in1k, ...; see `zoo info "
                     "MODEL`), or a .keras / .weights.h5 / .h5 / PyTorch / .safetensors / .caffemodel file."),
        click.option("--augment", type=click.Choice(AUGMENT_PRESETS), help="Augmentation preset; auto (default): "
                     "affine (small rotations and shifts) in full mode, none in head mode (backbone features cached)."),
        click.option("--mixup", type=float, help="Mixup alpha (0: off)."),
        click.option("--cutmix", type=float, help="CutMix factor (0: off)."),
        click.option("--max-examples", type=int, help="Use at most this many examples per split."),
        click.option("--norm", type=click.Choice(NORMALIZATIONS), help="Models with batch normalization: batch "
                     "(each batch's statistics, pretrained ones too), group (GroupNormalization, independent of "
                     "the batch) or frozen (the moving statistics, never updated: pretrained backbones at small "
                     "batches). Without it, pretrained BatchNorm runs on its moving statistics."),
        click.option("--balance", type=click.Choice(["oversample", "undersample"]), help="Draw every class "
                     "equally often in training: oversample the rare ones, or undersample the common ones."),
        click.option("--class-weights", is_flag=True, default=None, help="Weigh each example's loss by "
                     "n / (classes x its class's count), so that rare classes count as much as common ones."),
        click.option("--data-dir", type=click.Path(file_okay=False), help="TFDS data folder (default: $ZOO_DATA_DIR)."),
        click.option("--no-download", is_flag=True, default=None, help="Use prepared TFDS data only."),
        click.option("--cache/--no-cache", default=None, help="Keep decoded images in memory (default: when they "
                     "fit in 512 MiB)."),
        click.option("--strategy", type=click.Choice(["auto", "one", "mirrored", "multiworker", "tpu"])),
        click.option("--precision", type=click.Choice(["auto", "float32", "mixed"]),
                     help="auto (default): mixed bfloat16 on CPUs with native bfloat16, else float32; mixed "
                     "float16 on GPUs with tensor cores; bfloat16 on TPU."),
        click.option("--jit/--no-jit", default=None, help="Compile the training step with XLA."),
        click.option("--seed", type=int),
        click.option("--config", "config_file", type=click.Path(dir_okay=True), help="Start from a config.json "
                     "(a run's, or `zoo tune`'s best); options given here override it."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


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


@cli.command("finetune")
@click.argument("model")
@training_options
@click.option("--out", type=click.Path(file_okay=False), help="Run folder (default: runs/MODEL-N).")
@click.option("--resume", is_flag=True, help="Continue the interrupted run in --out from its last epoch "
              "(--epochs and --early-stopping may change; other options must match the run's).")
@click.option("--ema", type=float, help="Keep an exponential moving average of the weights (e.g. 0.99).")
@click.option("--backbone", help="captioner: the zoo model that encodes the images (default vgg11).")
@click.option("--rnn", type=click.Choice(["lstm", "gru"]), help="captioner: the decoder's recurrent layer.")
@click.option("--folds", type=int, help="k-fold cross-validation: K runs, each validating on one of K "
              "stratified folds of the training data, and their mean and spread (test split untouched).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def finetune_command(model, out, resume, quiet, backbone, rnn, folds, **options):
    """Fine-tune MODEL on your data (default: the built-in shapes) and leave a run folder.

    \b
    Examples:
      zoo finetune lenet5
      zoo finetune resnet50 --weights imagenet --data ./photos --mode head --epochs 5
      zoo finetune resnet18 --data tfds:cifar10 --image-size 64 --augment standard
      zoo finetune lenet5 --out runs/lenet --resume
    """
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


@cli.command("evaluate")
@click.argument("source", type=click.Path())
@click.option("--data", help="Data spec to evaluate on (default: the run's data, or the built-in shapes).")
@click.option("--split", type=click.Choice(["validation", "test"]), default="validation", show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--max-examples", type=click.IntRange(min=1))
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
def evaluate_command(source, data, split, batch_size, max_examples, as_json):
    """Evaluate a run folder or a .keras file: loss, accuracy, top-5 accuracy (BLEU for a captioner)."""
    metrics = api.evaluate(source, data, split=split, batch_size=batch_size, max_examples=max_examples)
    if as_json:
        click.echo(json.dumps(metrics, indent=2, default=str))
        return
    for key, value in metrics.items():
        if key == "samples":
            continue
        click.echo(f"{key:>16}  {value:.4f}" if isinstance(value, float) else f"{key:>16}  {value}")


@cli.command("lr-find")
@click.argument("model")
@training_options
@click.option("--steps", type=int, default=100, show_default=True, help="Steps of the range test.")
@click.option("--start-lr", type=float, default=1e-7, show_default=True)
@click.option("--end-lr", type=float, default=10.0, show_default=True)
@click.option("--plot", type=click.Path(dir_okay=False), default="lr_find.png", show_default=True,
              help="Where to draw loss against learning rate.")
def lr_find_command(model, steps, start_lr, end_lr, plot, **options):
    """Learning-rate range test: loss against an exponentially rising learning rate, and a suggestion."""
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
