"""Datasets laid out as they are distributed, in miniature: caption folders (Flickr8k both ways,
Flickr30k, COCO, the kit's captions.csv) and labelled image folders (class subfolders, Kaggle's
images plus a CSV of labels). Images are tiny flat-coloured PNGs/JPEGs, so a class or a caption can
be learned from the colour."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

COLOURS = {"red": (220, 40, 40), "green": (40, 200, 60), "blue": (50, 70, 230)}
IMAGE_SIDE = 16


def save_image(path: Path, colour: str, seed: int = 0) -> Path:
    """A small image of `colour` with a little noise, as PNG or JPEG by its suffix."""
    rng = np.random.default_rng(seed)
    pixels = np.clip(np.array(COLOURS[colour]) + rng.integers(-20, 20, (IMAGE_SIDE, IMAGE_SIDE, 3)), 0, 255)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels.astype(np.uint8)).save(path)
    return path


def coloured_images(count: int, prefix: str = "img"):
    """(file stem, colour) of `count` images, the colours in turn."""
    names = list(COLOURS)
    return [(f"{prefix}{index}", names[index % len(names)]) for index in range(count)]


def captions_of(colour: str) -> list[str]:
    return [f"a {colour} square", f"something {colour}, plain"]


# -- caption folders ------------------------------------------------------------------------------------------
def flickr8k_kaggle(root: Path, count: int = 12) -> Path:
    """Kaggle's Flickr8k: Images/ and captions.txt, `image,caption` with a header and unquoted commas."""
    lines = ["image,caption"]
    for stem, colour in coloured_images(count):
        save_image(root / "Images" / f"{stem}.jpg", colour)
        lines += [f"{stem}.jpg,{caption}" for caption in captions_of(colour)]
    (root / "captions.txt").write_text("\n".join(lines) + "\n")
    return root


def flickr8k_original(root: Path, count: int = 12) -> Path:
    """The original Flickr8k: Flicker8k_Dataset/ (sic) and Flickr8k_text/ with the token file and the
    split lists; one captioned image is in no list, one listed image has no file."""
    text = root / "Flickr8k_text"
    text.mkdir(parents=True)
    lines, names = [], []
    for stem, colour in coloured_images(count):
        save_image(root / "Flicker8k_Dataset" / f"{stem}.jpg", colour)
        lines += [f"{stem}.jpg#{number}\t{caption}" for number, caption in enumerate(captions_of(colour))]
        names.append(f"{stem}.jpg")
    (text / "Flickr8k.token.txt").write_text("\n".join(lines) + "\n")
    (text / "Flickr8k.lemma.token.txt").write_text("not read\n")
    train, dev, test = names[:6], names[6:8], names[8:11]  # names[11]: in no list
    (text / "Flickr_8k.trainImages.txt").write_text("\n".join(train + ["gone.jpg"]) + "\n")
    (text / "Flickr_8k.devImages.txt").write_text("\n".join(dev) + "\n")
    (text / "Flickr_8k.testImages.txt").write_text("\n".join(test) + "\n")
    return root


def flickr30k(root: Path, count: int = 9) -> Path:
    """Kaggle's Flickr30k: flickr30k_images/results.csv (`image_name| comment_number| comment`) and the
    images one folder further down; one row lacks a separator, as one of the real file's does."""
    folder = root / "flickr30k_images"
    lines = ["image_name| comment_number| comment"]
    for stem, colour in coloured_images(count):
        save_image(folder / "flickr30k_images" / f"{stem}.jpg", colour)
        lines += [f"{stem}.jpg| {number}| {caption}" for number, caption in enumerate(captions_of(colour))]
    lines += [f"{stem}.jpg| 2| a {colour} thing" for stem, colour in coloured_images(count)]
    lines.append("img0.jpg| 3 a broken row")  # the real file has one like it
    (folder / "results.csv").write_text("\n".join(lines) + "\n")
    return root


def coco(root: Path, train: int = 9, val: int = 3) -> Path:
    """COCO: annotations/captions_train2017.json and captions_val2017.json, images in train2017/ and val2017/."""
    for split, count, first_id in (("train2017", train, 1), ("val2017", val, 1000)):
        images, annotations = [], []
        for offset, (_, colour) in enumerate(coloured_images(count)):
            image_id = first_id + offset
            file_name = f"{image_id:012d}.jpg"
            save_image(root / split / file_name, colour)
            images.append({"id": image_id, "file_name": file_name, "height": IMAGE_SIDE, "width": IMAGE_SIDE})
            annotations += [{"id": 10 * image_id + number, "image_id": image_id, "caption": caption}
                            for number, caption in enumerate(captions_of(colour))]
        (root / "annotations").mkdir(parents=True, exist_ok=True)
        (root / "annotations" / f"captions_{split}.json").write_text(
            json.dumps({"info": {}, "images": images, "annotations": annotations}))
    return root


def captions_csv(root: Path, count: int = 9) -> Path:
    """The kit's own layout: images beside captions.csv, `image,caption` rows without a header."""
    lines = []
    for stem, colour in coloured_images(count):
        save_image(root / f"{stem}.png", colour)
        lines += [f'{stem}.png,"{caption}"' for caption in captions_of(colour)]
    (root / "captions.csv").write_text("\n".join(lines) + "\n")
    return root


CAPTION_LAYOUTS = {"flickr8k_kaggle": flickr8k_kaggle, "flickr8k_original": flickr8k_original,
                   "flickr30k": flickr30k, "coco": coco, "captions_csv": captions_csv}


# -- labelled folders ------------------------------------------------------------------------------------------
def class_folders(root: Path, count: int = 12) -> Path:
    """A subfolder of images per class."""
    for stem, colour in coloured_images(count):
        save_image(root / colour / f"{stem}.png", colour)
    return root


def kaggle_labels_csv(root: Path, count: int = 12) -> Path:
    """Kaggle's dog-breed layout: labels.csv (`id,breed`, ids without extension), train/ of <id>.jpg,
    test/ with an unlabelled test.csv; one labelled id has no image."""
    rows = ["id,breed"]
    for stem, colour in coloured_images(count):
        save_image(root / "train" / f"{stem}.jpg", colour)
        rows.append(f"{stem},{colour}")
    rows.append("lost_image,red")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    save_image(root / "test" / "unknown0.jpg", "red")
    (root / "test.csv").write_text("id\nunknown0\n")
    return root


def split_label_files(root: Path, train: int = 9, val: int = 3, test: int = 3) -> Path:
    """train.csv, val.csv and test.csv (`filename,label`, with extensions) over one images/ folder."""
    for name, count in (("train", train), ("val", val), ("test", test)):
        rows = ["filename,label"]
        for stem, colour in coloured_images(count, prefix=f"{name}_"):
            save_image(root / "images" / f"{stem}.png", colour)
            rows.append(f"{stem}.png,{colour}")
        (root / f"{name}.csv").write_text("\n".join(rows) + "\n")
    return root


def one_hot_labels(root: Path, count: int = 12) -> Path:
    """Plant-pathology's layout: train.csv with one 0/1 column per class (`image_id,red,green,blue`)."""
    names = list(COLOURS)
    rows = ["image_id," + ",".join(names)]
    for stem, colour in coloured_images(count):
        save_image(root / "images" / f"{stem}.jpg", colour)
        rows.append(f"{stem}," + ",".join("1" if name == colour else "0" for name in names))
    (root / "train.csv").write_text("\n".join(rows) + "\n")
    return root


def labels_elsewhere(root: Path, count: int = 12) -> Path:
    """Images in photos/ and a semicolon-separated label file given with --labels (meta/species.csv),
    its columns found by content: the file names (with extension) and the one other column."""
    rows = ["picture;kind"]
    for stem, colour in coloured_images(count):
        save_image(root / "photos" / f"{stem}.png", colour)
        rows.append(f"{stem}.png;{colour}")
    (root / "meta").mkdir(parents=True)
    (root / "meta" / "species.csv").write_text("\n".join(rows) + "\n")
    return root
