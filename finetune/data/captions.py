"""Captioned images: images with every reference caption of each, from the built-in scenes, TFDS
(coco_captions) or a folder of images with its caption file as datasets distribute them
(`finetune.data.caption_files`)."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import tensorflow as tf

from finetune import files
from finetune.data.caption_files import read_caption_splits
from finetune.data.image_index import ImageIndex, search_folders
from finetune.data.images import check_files, summarize_skipped
from finetune.data.pipeline import check_image_size, decode_items
from finetune.data.source import AUTOTUNE, Source, carve_validation, cap, keep_small_items_in_memory, read_and_decode
from finetune.data.specs import DEFAULT_CAPTIONS_SPEC, DataSpec, parse_spec, resolve_data_dir
from finetune.data.tfds_sources import prepare, read_split, split_names, split_size, tfds_builder, undecoded_reader, is_small
from zoo.errors import ZooError

log = logging.getLogger(__name__)


@dataclasses.dataclass
class CaptionFolder:
    """The readable captioned images of a folder by split role: (image paths, captions of each)."""

    splits: dict[str, tuple[list[str], list[list[str]]]]
    skipped: list[tuple[str, str]]


def caption_folder(source: Path) -> CaptionFolder:
    """A captioning dataset as distributed: a folder of images with its caption file (or that file
    itself), in any format `finetune.data.caption_files` reads. Every caption of an image is kept."""
    if not source.exists():
        raise ZooError(f"no such folder: {source}")
    captioned = read_caption_splits(source)
    root = source if source.is_dir() else source.parent
    # A caption file given itself may sit in a text folder beside the images' (Flickr8k_text/).
    around = [] if source.is_dir() else search_folders(root.parent)
    candidates, skipped = [], []  # (role, file, captions) to check; (name, reason)
    for role, caption_file in captioned.splits.items():
        first = [caption_file.image_folder] if caption_file.image_folder else []
        index = ImageIndex(search_folders(root, first=[*first, caption_file.path.parent]) + around)
        for name, captions in caption_file.captions.items():
            found = index.find(name)
            if not captions:
                skipped.append((name, f"no captions in {caption_file.path.name}"))
            elif found is None:
                skipped.append((name, "missing"))
            else:
                candidates.append((role, str(found), captions))
    if not candidates:
        missing = [name for name, reason in skipped if reason == "missing"]
        raise ZooError(f"none of the {len(missing)} images {captioned.described} names were found in {root} or "
                       f"its subfolders (the first: {missing[0]!r}); put the images beside the caption file or in "
                       f"an images/ folder" if missing else f"{captioned.described} holds no captions")
    checked = check_files([path for _, path, _ in candidates], key=str(root.resolve()))
    skipped += checked.skipped
    if not checked.paths:
        raise ZooError(f"none of the {len(candidates)} captioned images in {root} could be read: "
                       f"{summarize_skipped(checked.skipped, root)}")
    splits: dict[str, tuple[list[str], list[list[str]]]] = {}
    for index, path in zip(checked.indices, checked.paths):
        role, _, captions = candidates[index]
        paths, references = splits.setdefault(role, ([], []))
        paths.append(path)
        references.append(captions)
    if "train" not in splits:
        raise ZooError(f"none of the training images of {captioned.described} could be read "
                       f"({summarize_skipped(skipped, root)})")
    return CaptionFolder(splits, skipped)


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
    splits, sizes = {}, {}
    for role, (paths, references) in folder.splits.items():
        captions = tf.ragged.constant(references, dtype=tf.string)
        splits[role] = tf.data.Dataset.from_tensor_slices((tf.constant(files.path_bytes(paths), tf.string), captions))
        sizes[role] = len(paths)
    return Source(splits, sizes, read_and_decode, [], [path for path, _ in folder.skipped], str(spec), files=True)


def caption_tfds_source(spec: DataSpec, data_dir, download) -> Source:
    builder = tfds_builder(spec, resolve_data_dir(data_dir))
    info = builder.info
    if "captions" not in info.features:
        raise ZooError(f"{spec} has no captions; captioning takes builtin:zoo_shape_captions, "
                       f"tfds:coco_captions or a folder of images with a captions file")
    builder = prepare(builder, spec, download)
    info = builder.info  # with the split sizes of the prepared data
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
    """Images with all their reference captions: `builtin:zoo_shape_captions` (default), a folder
    of images with its caption file (Flickr8k's captions.txt or Flickr8k.token.txt with its split
    lists, Flickr30k's results.csv, COCO's captions_*.json, or captions.csv `image,caption`; see
    `finetune.data.caption_files`) or that file itself, or `tfds:coco_captions` (prepared data).

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
