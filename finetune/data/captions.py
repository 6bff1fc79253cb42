"""Captioned images: images with every reference caption of each, from the built-in scenes, TFDS
(coco_captions) or a folder of images with a captions file."""

from __future__ import annotations

import csv
import dataclasses
import logging
from pathlib import Path

import tensorflow as tf

from finetune import files
from finetune.data.images import check_files, summarize_skipped
from finetune.data.pipeline import check_image_size, decode_items
from finetune.data.source import AUTOTUNE, Source, carve_validation, cap, keep_small_items_in_memory, read_and_decode
from finetune.data.specs import DEFAULT_CAPTIONS_SPEC, DataSpec, parse_spec, resolve_data_dir
from finetune.data.tfds_sources import prepare, read_split, split_names, split_size, tfds_builder, undecoded_reader, is_small
from zoo.errors import ZooError

log = logging.getLogger(__name__)


@dataclasses.dataclass
class CaptionFolder:
    paths: list[str]
    captions: list[list[str]]
    skipped: list[tuple[str, str]]

def read_caption_file(root: Path) -> dict[str, list[str]]:
    """{image file name: captions} from captions.csv (`image,caption` rows, a header allowed), else
    captions.txt or *.token (`image#n<TAB>caption` lines, Flickr8k's format)."""
    by_image: dict[str, list[str]] = {}
    csv_file = root / "captions.csv"
    if csv_file.is_file():
        with csv_file.open(newline="", encoding="utf8") as file:
            for row in csv.reader(file):
                if len(row) >= 2 and row[0].strip().lower() != "image":
                    by_image.setdefault(row[0].strip(), []).append(",".join(row[1:]).strip())
        return by_image
    token_file = next((path for path in [root / "captions.txt", *sorted(root.glob("*.token"))] if path.is_file()), None)
    if token_file is None:
        raise ZooError(f"{root} has no captions.csv (image,caption rows) or captions.txt/*.token "
                       f"(image#n<TAB>caption lines): add one next to the images")
    for line in token_file.read_text(encoding="utf8").splitlines():
        if "\t" in line:
            key, caption = line.split("\t", 1)
            by_image.setdefault(key.split("#")[0].strip(), []).append(caption.strip())
    return by_image

def caption_folder(root: Path) -> CaptionFolder:
    """A Flickr8k-style folder: images (in it, or in images/ or Images/) plus a captions file
    (see `_read_caption_file`). Every caption of an image is kept."""
    if not root.is_dir():
        raise ZooError(f"no such folder: {root}")
    by_image = read_caption_file(root)
    names, files, skipped = [], [], []
    for name in sorted(by_image):
        folders = (root, root / "images", root / "Images")
        found = next((folder / name for folder in folders if (folder / name).is_file()), None)
        if found is None:
            skipped.append((name, "missing"))
        else:
            names.append(name)
            files.append(str(found))
    checked = check_files(files)
    skipped += checked.skipped
    if not checked.paths:
        raise ZooError(f"{root}: none of the captioned images could be read ({len(skipped)} skipped)")
    return CaptionFolder(checked.paths, [by_image[names[index]] for index in checked.indices], skipped)

@dataclasses.dataclass
class CaptionBundle:
    """Unbatched (image float32 [H,W,C] in [0, 255], captions tf.string [R]) per split."""

    train: tf.data.Dataset
    validation: tf.data.Dataset
    test: tf.data.Dataset | None
    sizes: dict[str, int]
    description: str
    skipped: list[str] = dataclasses.field(default_factory=list)

def caption_folder_source(spec: DataSpec) -> Source:
    folder = caption_folder(Path(spec.name).expanduser())
    if folder.skipped:
        log.warning(summarize_skipped(folder.skipped, spec.name))
    captions = tf.ragged.constant(folder.captions, dtype=tf.string)
    train = tf.data.Dataset.from_tensor_slices((tf.constant(files.path_bytes(folder.paths), tf.string), captions))
    return Source({"train": train}, {"train": len(folder.paths)}, read_and_decode, [],
                  [path for path, _ in folder.skipped], str(spec), files=True)

def caption_tfds_source(spec: DataSpec, data_dir, download) -> Source:
    builder = tfds_builder(spec, resolve_data_dir(data_dir))
    info = builder.info
    if "captions" not in info.features:
        raise ZooError(f"{spec} has no captions; captioning takes builtin:zoo_shape_captions, "
                       f"tfds:coco_captions or a folder of images with a captions file")
    prepare(builder, spec, download)
    decoders, decode = undecoded_reader(builder, "image")

    def image_and_captions(example):
        captions = example["captions"]
        if isinstance(captions, dict):  # coco_captions: a sequence of {"id", "text"}
            captions = captions["text"]
        return example["image"], captions

    splits, sizes = {}, {}
    for role, name in split_names(spec, set(info.splits.keys())).items():
        dataset = read_split(builder, name, decoders)
        splits[role] = dataset.map(image_and_captions, num_parallel_calls=AUTOTUNE)
        sizes[role] = split_size(info, spec, name)
    return Source(splits, sizes, decode, [], [], str(spec), is_small(info))

def load_captions(spec: str | None = None, *, image_size, batch_size: int = 32, seed: int = 0,
                  data_dir: str | None = None, download: bool = True, max_examples: int | None = None,
                  validation_fraction: float = 0.1) -> CaptionBundle:
    """Images with all their reference captions: `builtin:zoo_shape_captions` (default), a
    Flickr8k-style folder (images plus captions.csv `image,caption` or captions.txt / *.token
    `image#n<TAB>caption`), or `tfds:coco_captions` (prepared data).

    Args:
        image_size: an int (square RGB) or (height, width, channels).
        batch_size: unused: the captioner batches (image, caption) pairs itself.
        seed: the validation split carved out of train when the source has none.
    """
    del batch_size
    size = check_image_size((image_size, image_size, 3) if isinstance(image_size, int) else image_size)
    parsed = parse_spec(spec, default=DEFAULT_CAPTIONS_SPEC)
    if parsed.kind == "folder":
        source = caption_folder_source(parsed)
    else:
        source = caption_tfds_source(parsed, data_dir, download)
    carve_validation(source, validation_fraction, seed)
    cap(source, max_examples)
    keep_small_items_in_memory(source)

    def pixels(dataset):
        return decode_items(source, dataset, size).map(lambda image, captions: (tf.cast(image, tf.float32), captions))

    streams = {role: pixels(dataset) for role, dataset in source.splits.items()}
    sizes = {role: source.sizes[role] for role in ("train", "validation", "test") if role in source.sizes}
    return CaptionBundle(streams["train"], streams["validation"], streams.get("test"), sizes,
                         source.description, source.skipped)
