"""ONNX and LiteRT exports run in their own runtimes: ONNX Runtime and the LiteRT interpreter.

Both take what the kit's exports take (uint8 NHWC pixels, any batch size; of any one size per
batch, or at the model's size for exports made before they carried their resize and crop) and
give back float32 probabilities, so predict, the export's quantization report and the benchmarks
run an export exactly as a user's server would.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from finetune import files
from finetune.quiet import native_stderr_silenced
from finetune.serving.extras import missing_extra
from finetune.serving.onnx_format import read_metadata
from finetune.serving.staging import find_export
from zoo.errors import ZooError

try:  # the `export` extra
    import onnxruntime
except ImportError:
    onnxruntime = None
try:
    from ai_edge_litert.interpreter import Interpreter
except ImportError:
    Interpreter = None

ONNX, LITERT = "onnx", "litert"
MODEL_FILES = {ONNX: files.ONNX_MODEL, LITERT: files.LITERT_MODEL}
SUFFIXES = {".onnx": ONNX, ".tflite": LITERT}


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class OnnxRuntimeModel:
    """An ONNX model in an ONNX Runtime CPU session."""

    format = ONNX

    def __init__(self, model: bytes | Path, threads: int | None = None):
        """`model`: a serialized model or the path of a .onnx file; `threads`: intra-op threads
        (None: ONNX Runtime's default, one per physical core)."""
        if onnxruntime is None:
            raise missing_extra("Running ONNX models")
        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = onnxruntime.InferenceSession(
                model if isinstance(model, bytes) else str(model), options, providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own untyped errors for unreadable models
            raise ZooError(f"ONNX Runtime cannot load {_name(model)}: {error}") from None
        self._input = self.session.get_inputs()[0]
        # (height, width, channels); None for a dimension of any size
        self.input_shape = tuple(dim if isinstance(dim, int) else None for dim in self._input.shape[1:])
        classes = self.session.get_outputs()[0].shape[-1]
        self.num_classes = classes if isinstance(classes, int) else None
        self.metadata = read_metadata(self.session.get_modelmeta().custom_metadata_map)
        _check_uint8(self._input.type == "tensor(uint8)", model, self._input.type)

    def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 [N, height, width, channels] -> float32 [N, classes]."""
        return self.session.run(None, {self._input.name: np.ascontiguousarray(pixels, np.uint8)})[0]


class LiteRTModel:
    """A LiteRT model in the LiteRT interpreter (XNNPACK on CPUs), run through its signature."""

    format = LITERT

    def __init__(self, model: bytes | Path, threads: int | None = None, metadata: dict | None = None):
        """`model`: a flatbuffer or the path of a .tflite file; `threads`: None uses every usable core."""
        if Interpreter is None:
            raise missing_extra("Running LiteRT models")
        try:
            # the interpreter announces its CPU delegate on the terminal when it first allocates
            with native_stderr_silenced():
                self.interpreter = Interpreter(
                    model_content=model if isinstance(model, bytes) else None,
                    model_path=None if isinstance(model, bytes) else str(model), num_threads=threads or usable_cores())
                self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as error:
            raise ZooError(f"the LiteRT interpreter cannot load {_name(model)}: {error}") from None
        signatures = self.interpreter.get_signature_list()
        if len(signatures) != 1:
            raise ZooError(f"{_name(model)} has {len(signatures)} signatures; the kit runs models with one")
        key = next(iter(signatures))
        self._runner = self.interpreter.get_signature_runner(key)
        self._input_name = signatures[key]["inputs"][0]
        self._output_name = signatures[key]["outputs"][0]
        details = self._runner.get_input_details()[self._input_name]
        self.input_shape = tuple(int(dim) if dim >= 0 else None for dim in details["shape_signature"][1:])
        self._dynamic_batch = int(details["shape_signature"][0]) == -1
        self.num_classes = int(self._runner.get_output_details()[self._output_name]["shape"][-1])
        self.metadata = metadata or {}
        _check_uint8(details["dtype"] == np.uint8, model, np.dtype(details["dtype"]).name)

    def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 [N, height, width, channels] -> float32 [N, classes]; one image at a time where
        the model's batch size is fixed."""
        pixels = np.ascontiguousarray(pixels, np.uint8)
        if self._dynamic_batch:
            return self._runner(**{self._input_name: pixels})[self._output_name].copy()
        return np.concatenate([self._runner(**{self._input_name: image[None]})[self._output_name].copy()
                               for image in pixels])


def _name(model) -> str:
    return "the converted model" if isinstance(model, bytes) else str(model)


def _check_uint8(is_uint8: bool, model, dtype: str) -> None:
    if not is_uint8:
        raise ZooError(f"{_name(model)} takes {dtype} input; the kit runs models taking uint8 pixels, "
                       f"as `zoo export --format onnx|litert` writes them")


def open_model(model: bytes | Path, export_format: str, threads: int | None = None):
    """An ONNX or LiteRT model (a file, or the bytes of one) in its runtime; a file's metadata is
    read from the model (ONNX) or from zoo.json beside it (LiteRT)."""
    if export_format == ONNX:
        return OnnxRuntimeModel(model, threads)
    metadata = {}
    if not isinstance(model, bytes) and (Path(model).parent / files.PORTABLE_METADATA).is_file():
        path = Path(model).parent / files.PORTABLE_METADATA
        try:
            metadata = json.loads(path.read_text(encoding="utf8"))
        except (OSError, ValueError) as error:
            raise ZooError(f"cannot read {path}: {error}") from None
    return LiteRTModel(model, threads, metadata)


def find_portable_model(source) -> tuple[Path, str] | None:
    """The ONNX or LiteRT model `source` names, with its format: a .onnx or .tflite file, an
    export's version folder holding one, or the served model's folder when its latest version does."""
    source = Path(source)
    if source.is_file():
        return (source, SUFFIXES[source.suffix]) if source.suffix in SUFFIXES else None
    folder = find_export(source)
    for export_format, name in MODEL_FILES.items():
        if folder is not None and (folder / name).is_file():
            return folder / name, export_format
    return None
