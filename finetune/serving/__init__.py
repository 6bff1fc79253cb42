"""Serving: trained models loaded, run on images, evaluated and exported.

- `loading`: run folders and `.keras` files loaded with what they need (preprocessing, classes);
- `classifier`, `pixels`, `predictor`, `batch`: images in, classes out, in the graph and in Python;
- `evaluation`, `rundata`: a model scored on a run's own data or another's;
- `staging`, `export`, `extras`: the one export stager and the SavedModel for TF Serving;
- `portable`, `onnx_format`, `litert_format`, `runtimes`: ONNX Runtime and LiteRT exports.
"""

from finetune.runtime import start_tensorflow

start_tensorflow()  # before the modules below import it
