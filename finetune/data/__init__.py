"""The data layer: data specs resolved to tf.data streams for a zoo model, and augmentation.

- `specs`: the data spec string (builtin:NAME, tfds:NAME[/CONFIG][:SPLIT], or a folder);
- `source`, `tfds_sources`, `folders`: datasets as per-split streams of undecoded items;
- `label_files`, `caption_files`: images with a CSV of labels, caption files, as datasets ship them
  (`image_index` finds the images they name, `text_tables` checks their rows);
- `images`: image files checked before training and decoded in the pipeline;
- `pipeline`: decoded, sized, cached, shuffled, batched streams (`load_data`);
- `captions`: images with their captions, for the captioner (`load_captions`);
- `augment`: training-time augmentation from Keras preprocessing layers;
- `datasets`: the project's own datasets, real TFDS builders generated offline.
"""

from finetune.runtime import start_tensorflow

start_tensorflow()  # before the modules below import it

from finetune.data.captions import CaptionBundle, load_captions  # noqa: E402
from finetune.data.pipeline import DataBundle, load_data, load_images, read_statistics  # noqa: E402
from finetune.data.specs import DataSpec, parse_spec  # noqa: E402

__all__ = ["CaptionBundle", "DataBundle", "DataSpec", "load_captions", "load_data", "load_images", "parse_spec",
           "read_statistics"]
