"""What `weights=` names, resolved: a tag of the model or a file in any format the zoo reads.

- keras.applications' tags and Keras files (`.keras`, `.weights.h5`, legacy `.h5`) load as they are;
- other libraries' tags (torchvision, timm, BVLC Caffe) are downloaded through the Keras cache,
  checked against their hash, converted once for the model the weights need, and the converted
  weights kept in the cache (``models/zoo_converted/``) as a Keras weights file, so later loads
  read that and work offline;
- a PyTorch, safetensors or Caffe file is recognized by its content whatever its name; the model
  options it needs (the variant) come from its keys and shapes;
- a `.keras` file the zoo imported records the options, preprocessing and class names of its weights.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from typing import Callable

from zoo.errors import ZooError
from zoo.eval_transform import SQUASH_BILINEAR, EvalTransform
from zoo.preprocessing import Preprocessing
from zoo.weights.assign import assign
from zoo.weights.converters import convert_source, converter_for, source_options
from zoo.weights.download import CACHE_SUBDIR, fetch_keras_file, fetch_pretrained, keras_cache_dir
from zoo.weights.files import WEIGHTS_METADATA, WeightFile, read_keras_metadata, read_weight_file, save_legacy_weights
from zoo.weights.sources import HDF5, KERAS_MODEL, SourceWeights, kind_of, read_source_weights
from zoo.weights.untrusted import describe_value, reading

CONVERTED_FOLDER = "zoo_converted"
CONVERSION_VERSION = 1  # part of the converted files' names: a changed conversion converts again


@dataclasses.dataclass
class ResolvedWeights:
    """Weights ready to load: the options the model needs for them and what they expect."""

    name: str  # "resnet18.tv_in1k", or the file's path
    options: dict
    num_classes: int | None
    input_shape: tuple | None
    preprocessing: Preprocessing | None  # None: the model's own
    class_names: object  # "imagenet", a list of names, or None
    source: str | None
    weight_file: Callable[[object], WeightFile]  # the built model -> its arrays
    evaluation: EvalTransform | None = None  # how the source evaluates them; None: unknown (a bare file)

    def record(self, model_name: str) -> dict:
        """What a `.keras` file of the model keeps of its weights (zoo.weights.files.WEIGHTS_METADATA)."""
        return {"model": model_name, "weights": self.name, "source": self.source, "options": self.options,
                "preprocessing": self.preprocessing.to_dict() if self.preprocessing else None,
                "class_names": self.class_names,
                "evaluation": self.evaluation.to_dict() if self.evaluation else None}


def converted_path(spec, tag: str) -> str:
    """Where the converted weights of a tag are kept in the Keras cache."""
    return os.path.join(keras_cache_dir(), CACHE_SUBDIR, CONVERTED_FOLDER,
                        f"{spec.name}.{tag}.converted-v{CONVERSION_VERSION}.h5")


def _convert_tag(spec, pretrained, build_reference) -> str:
    """Downloads (or finds) a tag's file, converts it for the model it was trained on, and keeps
    the result as a legacy Keras weights file; returns its path."""
    path = converted_path(spec, pretrained.tag)
    if os.path.isfile(path):
        return path
    source_path = fetch_keras_file(pretrained.top_url, pretrained.top_hash, f"{spec.name}.{pretrained.tag} weights file",
                                   pretrained.file_name)
    source = read_source_weights(source_path)
    options = {**spec.options, **source_options(spec, source, pretrained.options)}
    reference = build_reference(options, pretrained.num_classes, pretrained.input_shape)
    assign(reference, convert_source(spec, source, reference, options))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    # written beside its final name and renamed into place, so a reader never sees half a file
    handle, temporary = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".converting-", suffix=".h5")
    os.close(handle)
    try:
        save_legacy_weights(reference, temporary)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
    return path


def _resolve_tag(spec, tag: str, include_top: bool, build_reference) -> ResolvedWeights:
    pretrained = spec.weights[tag]
    common = dict(name=f"{spec.name}.{tag}", options=dict(pretrained.options), num_classes=pretrained.num_classes,
                  input_shape=pretrained.input_shape, preprocessing=pretrained.preprocessing,
                  class_names=pretrained.class_names, source=pretrained.source, evaluation=pretrained.evaluation)
    if pretrained.file_format == "keras":
        weight_file = read_weight_file(fetch_pretrained(pretrained, include_top))
        common.update(num_classes=weight_file.num_classes or pretrained.num_classes,
                      input_shape=weight_file.input_shape or pretrained.input_shape)
        return ResolvedWeights(**common, weight_file=lambda model: weight_file)
    path = _convert_tag(spec, pretrained, build_reference)
    return ResolvedWeights(**common, weight_file=lambda model: read_weight_file(path))


def _classifier_size(spec, source: SourceWeights, options: dict) -> int | None:
    weight = source.arrays.get(f"{converter_for(spec).source_name('predictions', options, source)}.weight")
    return int(weight.shape[0]) if weight is not None and weight.ndim else None


def _resolve_source(spec, path: str, given: dict) -> ResolvedWeights:
    source = read_source_weights(path)
    what = f"{source.format} file for {spec.name}"
    with reading(path, what):  # its arrays may have any shape and type: whatever fails says so with the file's name
        needed = source_options(spec, source, given)
        options = {**spec.options, **given, **needed}
        converter = converter_for(spec)
        num_classes, input_shape = _classifier_size(spec, source, options), converter.input_shape(source, options)

    def weight_file(model) -> WeightFile:
        with reading(path, what):
            return convert_source(spec, source, model, options)

    return ResolvedWeights(
        name=path, options=needed, num_classes=num_classes, input_shape=input_shape,
        preprocessing=converter.preprocessing(options), class_names=None, source=source.format,
        weight_file=weight_file,
    )


def _resolve_keras_file(spec, path: str) -> ResolvedWeights:
    weight_file = read_weight_file(path)
    record = read_keras_metadata(path) if kind_of(path) == KERAS_MODEL else None
    record = record if record and record.get("model") == spec.name else {}
    for key, value in (record.get("options") or {}).items():
        default = spec.options.get(key)
        if key not in spec.options or default is not None and not isinstance(value, type(default)):
            raise ZooError(f"{path}: its weights record ({WEIGHTS_METADATA}) gives {spec.name} the option "
                           f"{describe_value(key)}={describe_value(value)}, which it does not take: the file is "
                           f"damaged; import the weights again")
    preprocessing, evaluation = record.get("preprocessing"), record.get("evaluation")
    return ResolvedWeights(
        name=path, options=dict(record.get("options") or {}), num_classes=weight_file.num_classes,
        input_shape=weight_file.input_shape, preprocessing=preprocessing_from_dict(preprocessing) if preprocessing else None,
        class_names=record.get("class_names"), source=record.get("source"), weight_file=lambda model: weight_file,
        evaluation=EvalTransform.from_dict(evaluation) if evaluation else None,
    )


def tag_of(spec, weights: str) -> str | None:
    """The tag `weights` names ("tv_in1k" or "resnet18.tv_in1k"), or None."""
    tag = weights.removeprefix(f"{spec.name}.")
    return tag if tag in spec.weights else None


def looks_like_path(weights: str) -> bool:
    return os.path.exists(weights) or os.sep in weights or "." in os.path.basename(weights)


def is_other_library_file(weights: str) -> bool:
    """Whether `weights` is a PyTorch, safetensors or Caffe file (not a Keras one)."""
    return os.path.isfile(weights) and kind_of(weights) not in (KERAS_MODEL, HDF5)


def resolve(spec, weights: str, *, include_top: bool = True, given: dict | None = None,
            build_reference: Callable | None = None) -> ResolvedWeights:
    """Resolves a tag of `spec` or a weights file.

    Args:
        given: the family options the caller passed; a file that needs others is refused.
        build_reference: (options, num_classes, input_shape) -> a model, to convert a tag's file for.
    """
    given = given or {}
    if tag_of(spec, weights):
        return _resolve_tag(spec, tag_of(spec, weights), include_top, build_reference)
    if not looks_like_path(weights):
        tags = ", ".join(spec.weights) or "none"
        raise ZooError(
            f"{spec.name} has no weights {weights!r} (its weights: {tags}); pass a tag or a path to a .keras, "
            f".weights.h5, .h5, PyTorch (.pth, .pt, .bin), .safetensors or .caffemodel file"
        )
    if not os.path.isfile(weights):
        raise ZooError(f"no such weights file: {weights}")
    if kind_of(weights) in (KERAS_MODEL, HDF5):
        return _resolve_keras_file(spec, weights)
    return _resolve_source(spec, weights, given)


def describe(spec, weights: str, given: dict | None = None) -> dict:
    """What `weights` expect, without loading them: the record a `.keras` file keeps (model,
    weights, source, options, preprocessing as a dict or None for the model's own, class names).

    Tags need no file; a PyTorch, safetensors or Caffe file is read to find its variant.
    """
    given = given or {}
    if tag_of(spec, weights):
        pretrained = spec.weights[tag_of(spec, weights)]
        return ResolvedWeights(f"{spec.name}.{pretrained.tag}", dict(pretrained.options), pretrained.num_classes,
                               pretrained.input_shape, pretrained.preprocessing, pretrained.class_names,
                               pretrained.source, weight_file=None, evaluation=pretrained.evaluation).record(spec.name)
    if looks_like_path(weights) and os.path.isfile(weights) and kind_of(weights) not in (KERAS_MODEL, HDF5):
        source = read_source_weights(weights)
        options = source_options(spec, source, given)
        preprocessing = converter_for(spec).preprocessing({**spec.options, **given, **options})
        return ResolvedWeights(weights, options, None, None, preprocessing, None, source.format,
                               weight_file=None).record(spec.name)
    is_keras_model = looks_like_path(weights) and os.path.isfile(weights) and kind_of(weights) == KERAS_MODEL
    record = read_keras_metadata(weights) if is_keras_model else None
    if record and record.get("model") == spec.name:
        return record
    return {"model": spec.name, "weights": weights, "source": None, "options": {}, "preprocessing": None,
            "class_names": None, "evaluation": None}


def weights_preprocessing(spec, weights: str | None, given: dict | None = None) -> Preprocessing:
    """The pixel convention of `weights` (a tag or a file), else the model's own."""
    if not weights:
        return spec.preprocessing
    recorded = describe(spec, weights, given).get("preprocessing")
    return preprocessing_from_dict(recorded) if recorded else spec.preprocessing


def weights_evaluation(spec, weights: str | None, given: dict | None = None) -> EvalTransform:
    """How the source of `weights` (a tag, or a `.keras` file that records it) evaluates them;
    the squash of the whole image to the input where nothing says (no weights, a bare file)."""
    if not weights or is_other_library_file(weights):  # such a file says nothing of it: not worth reading
        return SQUASH_BILINEAR
    recorded = describe(spec, weights, given).get("evaluation")
    return EvalTransform.from_dict(recorded) if recorded else SQUASH_BILINEAR


def preprocessing_from_dict(values: dict) -> Preprocessing:
    """A Preprocessing from its `to_dict()` (as JSON files keep it, lists for tuples)."""
    return Preprocessing(**{key: tuple(value) if isinstance(value, list) else value for key, value in values.items()})
