"""`zoo finetune`, `zoo evaluate` and `zoo lr-find`: the fine-tuning layer on the command line.

The commands' work is in `finetune.cli.jobs.training`, imported when one runs (see `finetune.cli`).
"""

from __future__ import annotations

import click

from finetune.cli.app import cli
from zoo.registry import NORMALIZATIONS

# the kit's choices (`finetune.data.augment.PRESETS`, `finetune.training.config`), which a test keeps equal
AUGMENT_PRESETS = ("auto", "none", "affine", "light", "standard", "strong")

EVAL_RESIZE_HELP = ("How validation, test and served images are resized before the centre crop to the input: N "
                    "(the shorter side to N pixels), NxN (both sides, aspect not kept) or none (the whole image "
                    "squashed to the input, no crop). Default: as the weights' source evaluates them (see `zoo "
                    "info MODEL`; squash without pretrained weights).")
EVAL_CROP_HELP = ("Instead of --eval-resize N: the centre crop's share of the resized image, in (0, 1] (timm's "
                  "crop_pct: the shorter side resized to input / F).")


def evaluation_options(function):
    """--eval-resize and --eval-crop: the evaluation transform (`zoo.eval_transform`)."""
    function = click.option("--eval-crop", type=float, help=EVAL_CROP_HELP)(function)
    return click.option("--eval-resize", help=EVAL_RESIZE_HELP)(function)


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
        click.option("--data-service", metavar="ADDRESS", help="Read and decode the training images on tf.data "
                     "service workers (other machines too) through the dispatcher at ADDRESS, e.g. "
                     "grpc://host:5050; each example once per epoch (README: more machines feeding one trainer)."),
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
    return evaluation_options(function)


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
    from finetune.cli.jobs import training  # the kit, and TensorFlow with it, load when the command runs

    training.finetune(model, out, resume, quiet, backbone, rnn, folds, options)


@cli.command("evaluate")
@click.argument("source", type=click.Path())
@click.option("--data", help="Data spec to evaluate on (default: the run's data, or the built-in shapes).")
@click.option("--split", type=click.Choice(["validation", "test"]), default="validation", show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--max-examples", type=click.IntRange(min=1))
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
@evaluation_options
def evaluate_command(source, data, split, batch_size, max_examples, as_json, eval_resize, eval_crop):
    """Evaluate a run folder or a .keras file: loss, accuracy, top-5 accuracy (BLEU for a captioner).
    Images are resized and cropped as the model's weights were evaluated, unless --eval-resize or
    --eval-crop say otherwise."""
    from finetune.cli.jobs import training

    training.evaluate(source, data, split, batch_size, max_examples, as_json, eval_resize, eval_crop)


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
    from finetune.cli.jobs import training

    training.find_learning_rate(model, steps, start_lr, end_lr, plot, options)
