"""The 1000 ImageNet class names, from the class index file Keras publishes for decode_predictions."""

from __future__ import annotations

import functools
import json
import os

from zoo.errors import ZooError
from zoo.weights.download import CACHE_SUBDIR, fetch_keras_file, keras_cache_dir

# the file and MD5 keras.applications' decode_predictions downloads
CLASS_INDEX_URL = "https://storage.googleapis.com/download.tensorflow.org/data/imagenet_class_index.json"
CLASS_INDEX_HASH = "c2c37ea517e94d9795004a39431a14cb"
CLASS_INDEX_FILE = os.path.basename(CLASS_INDEX_URL)


def class_index_path() -> str:
    """Where the class index file lives in the Keras cache (it may not be there yet)."""
    return os.path.join(keras_cache_dir(), CACHE_SUBDIR, CLASS_INDEX_FILE)


def class_names(download: bool = True) -> list[str] | None:
    """The class names in output order ("tench", "goldfish", ...).

    With ``download=False`` only the cached file is read, and None means it is not cached.
    Raises ZooError, saying where to put the file, when it is neither cached nor downloadable.
    """
    if not download and not os.path.exists(class_index_path()):
        return None
    path = fetch_keras_file(CLASS_INDEX_URL, CLASS_INDEX_HASH, "ImageNet class index")
    return list(_read_class_index(path))


@functools.lru_cache(maxsize=4)
def _read_class_index(path: str) -> tuple[str, ...]:
    try:
        with open(path, encoding="utf8") as file:
            index = json.load(file)
        return tuple(index[str(position)][1] for position in range(len(index)))
    except (OSError, ValueError, KeyError, IndexError) as error:
        raise ZooError(f"{path} is not Keras's ImageNet class index ({error}); delete it to download it again") from None
