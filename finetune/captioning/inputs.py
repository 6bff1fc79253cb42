"""A captioning dataset as the captioner trains on it: (image, caption) pairs for teacher forcing.

A frozen encoder's features are computed once per split (`encode_split`), and the decoder trains
on (features, caption) pairs; a trained encoder sees each image once per step with all its captions
(`images_with_captions`, for `EveryCaptionOfEachImage`).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from finetune.captioning.config import CaptioningConfig
from zoo import text
from zoo.errors import ZooError


def split_captions(dataset) -> list[list[str]]:
    """The reference captions of every image of a split, as Python strings."""
    captions = []
    captions_only = tf.autograph.experimental.do_not_convert(lambda image, image_captions: image_captions)
    for batch in dataset.map(captions_only).ragged_batch(256):
        captions += [[caption.decode("utf-8") for caption in image] for image in ragged(batch).to_list()]
    if not captions:
        raise ZooError("the training split is empty")
    return captions


def ragged(captions):
    """Captions of a batch as a RaggedTensor [B, None] (ragged_batch gives a dense one when every
    image has as many references)."""
    return captions if isinstance(captions, tf.RaggedTensor) else tf.RaggedTensor.from_tensor(captions)


def teacher_forcing(ids):
    """Caption ids [B, L + 2] -> (inputs, targets), cut to the longest caption of the batch."""
    length = tf.reduce_max(tf.math.count_nonzero(ids, axis=1, dtype=tf.int32))
    return ids[:, : length - 1], ids[:, 1:length]


def encoder_function(captioner):
    return tf.function(lambda images: captioner.encoder(images, training=False), autograph=False,
                       input_signature=[tf.TensorSpec([None, *captioner.image_shape], tf.float32)])


def encode_split(captioner, dataset, vectorizer, config: CaptioningConfig):
    """The encoder's features of every image [N, F], the ids of every caption [P, L + 2] and the
    image each caption describes [P]: one encoder pass over the split."""
    encode = encoder_function(captioner)
    features, ids, owners = [], [], []
    for images, captions in dataset.ragged_batch(config.batch_size):
        captions = ragged(captions)
        first = sum(len(batch) for batch in features)
        features.append(encode(images).numpy())
        caption_ids = text.encode_captions(vectorizer, captions.flat_values, captioner.max_caption_length)
        ids.append(caption_ids.numpy())
        owners.append(first + captions.value_rowids().numpy())
    return np.concatenate(features), np.concatenate(ids), np.concatenate(owners)


def sample_features(captioner, dataset, config: CaptioningConfig, count: int = 2000):
    """Encoder features of the first `count` training images, for the feature statistics."""
    encode = encoder_function(captioner)
    image_only = tf.autograph.experimental.do_not_convert(lambda image, captions: image)
    images = dataset.map(image_only).take(count).batch(config.batch_size)
    return np.concatenate([encode(batch).numpy() for batch in images])


def feature_pairs(features, ids, owners, config: CaptioningConfig, shuffle: bool = False):
    """((image features, caption inputs), caption targets) batches of one split's cached features."""
    pairs = tf.data.Dataset.from_tensor_slices((owners, ids))
    if shuffle:
        pairs = pairs.shuffle(len(ids), seed=config.seed, reshuffle_each_iteration=True)
    table = tf.constant(features)

    @tf.autograph.experimental.do_not_convert  # plain graph code, like every tf.data function here
    def to_example(owner, caption_ids):
        inputs, targets = teacher_forcing(caption_ids)
        return (tf.gather(table, owner), inputs), targets

    return pairs.batch(config.batch_size).map(to_example, num_parallel_calls=tf.data.AUTOTUNE).prefetch(2)


def images_with_captions(dataset, vectorizer, captioner, images_per_step: int, seed: int, shuffle: bool = False):
    """((images [B, H, W, C], caption inputs [B, R, T]), caption targets [B * R, T]) batches for
    `EveryCaptionOfEachImage`; images with fewer than R references are padded with empty captions,
    which the mask leaves out of the loss."""
    if dataset is None:
        return None
    max_length = captioner.max_caption_length

    @tf.autograph.experimental.do_not_convert
    def encode(image, captions):
        return image, text.encode_captions(vectorizer, captions, max_length)

    images = dataset.map(encode, num_parallel_calls=tf.data.AUTOTUNE)
    if shuffle:
        images = images.shuffle(1024, seed=seed, reshuffle_each_iteration=True)
    padded_shapes = (list(captioner.image_shape), [None, max_length + 2])

    @tf.autograph.experimental.do_not_convert
    def to_example(images, caption_ids):
        inputs, targets = teacher_forcing(tf.reshape(caption_ids, [-1, max_length + 2]))
        references = tf.shape(caption_ids)[1]
        return (images, tf.reshape(inputs, [-1, references, tf.shape(inputs)[1]])), targets

    batches = images.padded_batch(images_per_step, padded_shapes=padded_shapes)
    return batches.map(to_example, num_parallel_calls=tf.data.AUTOTUNE).prefetch(2)
