"""Image captioning (Show and Tell) on the kit's run machinery: training, BLEU, export.

- `config`: every setting of a captioning run;
- `inputs`: (image, caption) pairs for teacher forcing, from cached encoder features or images;
- `training`: `train_captioner`, the captioning task of the shared trainer and epoch loop;
- `evaluation`: corpus BLEU of greedy and beam-search captions (`bleu`), sample captions drawn;
- `serving`: `load_captioner`, and `export_captioner` through the shared export stager.
"""

from finetune.runtime import start_tensorflow

start_tensorflow()  # before the modules below import it

from finetune.captioning.config import CaptioningConfig  # noqa: E402
from finetune.captioning.evaluation import evaluate_captioner  # noqa: E402
from finetune.captioning.serving import export_captioner, load_captioner  # noqa: E402
from finetune.captioning.training import train_captioner  # noqa: E402

__all__ = ["CaptioningConfig", "evaluate_captioner", "export_captioner", "load_captioner", "train_captioner"]
