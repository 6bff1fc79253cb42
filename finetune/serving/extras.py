"""What to say when a format's packages (the `export` extra) are not installed."""

from __future__ import annotations

from zoo.errors import ZooError

INSTALL_HINT = "pip install 'keras-zoo[export]' (or, in a checkout, pip install -e '.[export]')"


def missing_extra(job: str) -> ZooError:
    """The error for a `job` (e.g. "ONNX export") whose packages are missing."""
    return ZooError(f"{job} needs tf2onnx, onnx, onnxruntime and ai-edge-litert: {INSTALL_HINT}")
