"""Scoring a captioner: corpus BLEU of greedy and beam-search captions, with sample captions drawn."""

from __future__ import annotations

import math
import time

import numpy as np

from finetune.captioning.bleu import bleu_scores
from finetune.captioning.inputs import ragged
from finetune.training.plots import plt, save_figure
from zoo import decoding
from zoo.errors import ZooError


def evaluate_captioner(captioner, dataset, *, beam_width: int = decoding.DEFAULT_BEAM_WIDTH,
                       length_penalty: float = decoding.DEFAULT_LENGTH_PENALTY, batch_size: int = 64,
                       num_samples: int = 0, samples_png=None) -> dict:
    """Corpus BLEU-1..4 of greedy and beam-search captions of `dataset` (image, captions) against
    all references of each image; with samples of images and captions (drawn into `samples_png`)."""
    generator = decoding.CaptionGenerator(captioner, length_penalty=length_penalty)
    references, greedy, beam, sample_images = [], [], [], []
    started = time.perf_counter()
    for images, captions in dataset.ragged_batch(batch_size):
        greedy += generator(images, beam_width=1)
        beam += generator(images, beam_width=beam_width)
        references += [[caption.decode("utf-8") for caption in image_captions]
                       for image_captions in ragged(captions).to_list()]
        if len(sample_images) < num_samples:
            sample_images += list(images.numpy()[: num_samples - len(sample_images)])
    if not references:
        raise ZooError("the held-out split is empty: there is nothing to score")
    samples = [{"greedy": greedy[index], "beam": beam[index], "references": references[index]}
               for index in range(len(sample_images))]
    if samples_png is not None and sample_images:
        draw_samples(sample_images, samples, samples_png)
    return {
        "images": len(references),
        "greedy": bleu_scores(references, greedy),
        "beam": bleu_scores(references, beam),
        "beam_width": beam_width,
        "length_penalty": length_penalty,
        "evaluation_seconds": round(time.perf_counter() - started, 1),
        "samples": samples,
    }


def draw_samples(images, samples, path) -> None:
    """A grid of images, each titled with its beam-search caption and its first reference."""
    columns = min(4, len(images))
    rows = math.ceil(len(images) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 3.6 * rows), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for axis, image, sample in zip(axes.flat, images, samples):
        axis.imshow(np.clip(np.asarray(image), 0, 255).astype("uint8").squeeze())
        axis.set_title(f"{_wrap(sample['beam'])}\n(ref: {_wrap(sample['references'][0])})", fontsize=7)
    figure.tight_layout()
    save_figure(figure, path)


def _wrap(caption: str, width: int = 36) -> str:
    words, lines, line = caption.split(), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return "\n".join([*lines, line])
