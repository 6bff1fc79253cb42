"""bench_peers' worker for the zoo: times inference and one training step of each case in this
process, as the fine-tuning kit runs them, and prints the seconds as JSON lines.

    python scripts/peers_keras.py --cases resnet18:64:16:float32 --warmup 1 --samples 1

Training is the kit's own step (`finetune.training.trainer.Trainer`, full mode, Adam, a new
1000-class head: forward, loss, gradients and the optimizer update); inference a tf.function'd
`model(x, training=False)`. bfloat16 and float16 are Keras' mixed policies (float16 with the kit's
loss scaling); on a machine with a GPU, TensorFlow places everything there. Imported as the kit is used,
`finetune` first, so oneDNN is on or off as the kit leaves it unless TF_ENABLE_ONEDNN_OPTS is set.
"""

from __future__ import annotations

import argparse
import gc
import json

import benchmarks  # noqa: F401  (sets sys.path and TF_CPP_MIN_LOG_LEVEL first)
import finetune  # noqa: F401  (the kit's start-up settings come before TensorFlow starts)

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.python.util import _pywrap_util_port  # noqa: E402

from finetune.training import modeling  # noqa: E402
from finetune.training.classification import classifier_trainer  # noqa: E402
from finetune.training.config import FinetuneConfig  # noqa: E402
from finetune.training.precision import set_precision  # noqa: E402
import peers  # noqa: E402

POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}


class Workload:
    """One case's model, trainer and batch, built under the case's dtype policy."""

    def __init__(self, case: peers.Case):
        keras.backend.clear_session()
        gc.collect()
        set_precision(POLICIES[case.precision])
        keras.utils.set_random_seed(0)
        config = FinetuneConfig(model=case.model, mode="full", batch_size=case.batch, image_size=case.size,
                                optimizer="adam", lr=peers.LEARNING_RATE, schedule="constant", epochs=1,
                                diagnostics=False)
        strategy = tf.distribute.get_strategy()
        self.model = modeling.build(config, peers.NUM_CLASSES, (case.size, case.size, 3))
        self.trainer = classifier_trainer(self.model, config, strategy, steps_per_epoch=1)
        images, labels = peers.batch(case)
        self.images = tf.constant(images.transpose(0, 2, 3, 1))  # channels last
        dataset = tf.data.Dataset.from_tensors((self.images, tf.constant(labels))).repeat()
        self.iterator = iter(strategy.experimental_distribute_dataset(dataset))
        self.forward = tf.function(lambda x: self.model(x, training=False))

    def call(self, mode: str):
        if mode == "inference":
            return lambda: self.forward(self.images).numpy()
        return lambda: self.trainer.train_epoch(self.iterator).loss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", required=True, help="comma-separated model:size:batch:precision")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--samples", type=int, default=1)
    arguments = parser.parse_args()
    print(json.dumps({"onednn": bool(_pywrap_util_port.IsMklEnabled())}), flush=True)
    for case in peers.parse_cases(arguments.cases):
        workload = Workload(case)
        for mode in peers.MODES:
            wall, cpu = peers.timed(workload.call(mode), arguments.warmup, arguments.samples)
            print(json.dumps({"case": case.key(mode), "wall": wall, "cpu": cpu}), flush=True)
        del workload
    set_precision("float32")


if __name__ == "__main__":
    main()
