"""`zoo evaluate`: a trained model's metrics on a data split."""

from __future__ import annotations

from finetune.serving.loading import check_class_names, load_model
from finetune.serving.rundata import load_run_data
from finetune.training.evaluation import evaluate
from zoo.errors import ZooError
from zoo.eval_transform import overridden


def evaluate_source(source, *, data=None, split="validation", batch_size=64, max_examples=None, top_k=5,
                    eval_resize=None, eval_crop: float | None = None) -> dict:
    """Loss, accuracy and top-k accuracy of a run folder or `.keras` file on `split` of `data`
    (default: the run's own data, with the run's seed, so its validation split is the same), its
    images resized and cropped by the model's evaluation transform, or as eval_resize / eval_crop
    say (`zoo.eval_transform.overridden`)."""
    loaded = load_model(source)
    evaluation = overridden(loaded.evaluation, eval_resize, eval_crop, input_side=loaded.input_shape[0])
    bundle = load_run_data(source, loaded.input_shape, data=data, preprocessing=loaded.preprocessing,
                           batch_size=batch_size, max_examples=max_examples, evaluation=evaluation)
    dataset = bundle.test if split == "test" else bundle.validation
    if dataset is None:
        raise ZooError(f"{bundle.description} has no {split} split")
    check_class_names(bundle.class_names, loaded.class_names, bundle.description.split(" (")[0], str(source))
    metrics = evaluate(loaded.model, dataset, top_k=min(top_k, len(loaded.class_names)))
    metrics["split"] = split
    metrics["evaluated_with"] = evaluation.describe(*loaded.input_shape[:2])
    return metrics
