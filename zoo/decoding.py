"""Caption search over a `Captioner`: greedy and beam search.

Both are graph code (a `tf.while_loop` over fixed-shape tensors) so they compile into tf.functions
and into exported SavedModels. Both return word ids [B, max_length], padded with 0 after the
caption; the start, end, padding and unknown tokens never appear in a caption.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from zoo.errors import ZooError
from zoo.text import END_ID, PADDING_ID, SPECIAL_TOKENS, START_ID, UNKNOWN_ID

_NEVER = -1e9  # a log-probability no hypothesis survives; finite, so sums stay free of NaN
DEFAULT_BEAM_WIDTH = 3  # what worked best in im2txt, the reference Show and Tell implementation
DEFAULT_LENGTH_PENALTY = 0.7


def _word_logits(captioner, step, tokens, states):
    """Next-word logits where the tokens a caption never contains cannot be chosen, nor can the
    end token come first (an empty caption)."""
    logits, states = captioner.next_word_logits(tokens, states)
    banned = tf.reduce_sum(tf.one_hot([PADDING_ID, UNKNOWN_ID, START_ID], captioner.vocabulary_size), axis=0)
    banned += tf.cast(step == 0, tf.float32) * tf.one_hot(END_ID, captioner.vocabulary_size)
    return logits + _NEVER * banned, states


def _max_length(captioner, max_length):
    max_length = captioner.max_caption_length if max_length is None else int(max_length)
    if max_length < 1:
        raise ZooError(f"max_length must be at least 1, got {max_length}")
    return max_length


def greedy_search(captioner, images, *, max_length: int | None = None) -> tf.Tensor:
    """The most likely word at each step. images [B, H, W, C] in [0, 255] -> word ids [B, max_length]."""
    max_length = _max_length(captioner, max_length)
    states = captioner.initial_states(images)
    batch = tf.shape(images)[0]
    tokens = tf.fill([batch], START_ID)
    captions = tf.zeros([batch, max_length], tf.int32)
    finished = tf.zeros([batch], tf.bool)

    def keep_going(step, tokens, states, captions, finished):
        return tf.logical_and(step < max_length, tf.logical_not(tf.reduce_all(finished)))

    def one_word(step, tokens, states, captions, finished):
        logits, states = _word_logits(captioner, step, tokens, states)
        tokens = tf.argmax(logits, axis=-1, output_type=tf.int32)
        tokens = tf.where(finished, PADDING_ID, tokens)
        finished = tf.logical_or(finished, tokens == END_ID)
        words = tf.where(tokens == END_ID, PADDING_ID, tokens)
        captions += tf.one_hot(step, max_length, dtype=tf.int32)[tf.newaxis, :] * words[:, tf.newaxis]
        return step + 1, tokens, states, captions, finished

    *_, captions, _ = tf.while_loop(keep_going, one_word, (tf.constant(0), tokens, states, captions, finished))
    return captions


def beam_search(captioner, images, *, beam_width: int = DEFAULT_BEAM_WIDTH,
                length_penalty: float = DEFAULT_LENGTH_PENALTY, max_length: int | None = None) -> tf.Tensor:
    """Keeps the `beam_width` best partial captions at each step. images -> word ids [B, max_length].

    Hypotheses are ranked by log-probability / length ** length_penalty (the end token counts as
    a word), so longer captions are not beaten merely for having more factors below one; with
    beam_width=1 this is greedy search.
    """
    if beam_width < 1:
        raise ZooError(f"the beam width must be at least 1, got {beam_width}")
    max_length = _max_length(captioner, max_length)
    vocabulary_size = captioner.vocabulary_size
    batch = tf.shape(images)[0]
    # Beams live side by side in the batch: row b * beam_width + j is beam j of image b.
    states = tf.nest.map_structure(lambda state: tf.repeat(state, beam_width, axis=0),
                                   captioner.initial_states(images))
    tokens = tf.fill([batch * beam_width], START_ID)
    # Only the first beam is live at the start, so the first step does not fill the beam with copies.
    log_probs = tf.tile(tf.constant([[0.0] + [_NEVER] * (beam_width - 1)]), [batch, 1])
    captions = tf.zeros([batch, beam_width, max_length], tf.int32)
    finished = tf.zeros([batch, beam_width], tf.bool)
    lengths = tf.zeros([batch, beam_width], tf.float32)
    # A finished hypothesis continues with padding alone, at no cost.
    after_the_end = _NEVER * (1.0 - tf.one_hot(PADDING_ID, vocabulary_size))

    def keep_going(step, tokens, states, captions, log_probs, finished, lengths):
        return tf.logical_and(step < max_length, tf.logical_not(tf.reduce_all(finished)))

    def one_word(step, tokens, states, captions, log_probs, finished, lengths):
        logits, states = _word_logits(captioner, step, tokens, states)
        word_log_probs = tf.reshape(tf.nn.log_softmax(logits), [batch, beam_width, vocabulary_size])
        word_log_probs = tf.where(finished[..., tf.newaxis], after_the_end, word_log_probs)
        candidates = log_probs[..., tf.newaxis] + word_log_probs  # [B, beam, V]
        candidate_lengths = lengths + tf.where(finished, 0.0, 1.0)
        scores = candidates / tf.pow(candidate_lengths, length_penalty)[..., tf.newaxis]
        _, best = tf.math.top_k(tf.reshape(scores, [batch, beam_width * vocabulary_size]), k=beam_width)
        origin = best // vocabulary_size  # the beam each survivor extends
        tokens = best % vocabulary_size
        log_probs = tf.gather(tf.reshape(candidates, [batch, -1]), best, batch_dims=1)
        was_finished = tf.gather(finished, origin, batch_dims=1)
        lengths = tf.gather(candidate_lengths, origin, batch_dims=1)
        captions = tf.gather(captions, origin, batch_dims=1)
        words = tf.where(tf.logical_or(was_finished, tokens == END_ID), PADDING_ID, tokens)
        captions += tf.one_hot(step, max_length, dtype=tf.int32) * words[..., tf.newaxis]
        finished = tf.logical_or(was_finished, tokens == END_ID)
        rows = tf.reshape(origin + beam_width * tf.range(batch)[:, tf.newaxis], [-1])
        states = tf.nest.map_structure(lambda state: tf.gather(state, rows), states)
        return step + 1, tf.reshape(tokens, [-1]), states, captions, log_probs, finished, lengths

    _, _, _, captions, log_probs, _, lengths = tf.while_loop(
        keep_going, one_word, (tf.constant(0), tokens, states, captions, log_probs, finished, lengths))
    best = tf.argmax(log_probs / tf.pow(tf.maximum(lengths, 1.0), length_penalty), axis=-1, output_type=tf.int32)
    return tf.gather(captions, best, batch_dims=1)


def decode_images(encoded, image_shape) -> tf.Tensor:
    """Encoded images (PNG, JPEG, GIF, BMP bytes) [N] -> float32 pixels in [0, 255] [N, H, W, C]."""
    height, width, channels = image_shape

    def decode(data):
        image = tf.io.decode_image(data, channels=channels, expand_animations=False)
        image = tf.image.resize(tf.cast(image, tf.float32), [height, width])
        return tf.clip_by_value(image, 0.0, 255.0)

    return tf.map_fn(decode, encoded, fn_output_signature=tf.TensorSpec([height, width, channels], tf.float32))


class CaptionGenerator(tf.Module):
    """Compiled caption search for one captioner, returning text: for the CLI, scoring and export."""

    def __init__(self, captioner, *, length_penalty: float = DEFAULT_LENGTH_PENALTY, max_length: int | None = None):
        super().__init__(name="caption_generator")
        if captioner.vocabulary is None:
            raise ZooError("this captioner has no vocabulary yet; train it with finetune.captioning.train_captioner")
        self.captioner = captioner
        self.length_penalty = float(length_penalty)
        self.max_length = _max_length(captioner, max_length)
        # id -> word, a lookup table: an export must track it (`ExportArchive.track`).
        self.words = keras.layers.StringLookup(vocabulary=captioner.vocabulary[2:], invert=True,
                                               mask_token=SPECIAL_TOKENS[PADDING_ID], name="caption_words")
        self.words(tf.constant([PADDING_ID]))  # builds the layer, as an export needs it built
        self._compiled = {}

    @property
    def image_shape(self):
        return self.captioner.image_shape

    def ids_to_text(self, ids) -> tf.Tensor:
        """Word ids [B, L] (0 after the caption) -> captions tf.string [B]."""
        ids = tf.convert_to_tensor(ids)
        words = tf.ragged.boolean_mask(self.words(ids), ids >= len(SPECIAL_TOKENS))
        return tf.strings.reduce_join(words, axis=-1, separator=" ")

    def search(self, images, beam_width: int = DEFAULT_BEAM_WIDTH) -> tf.Tensor:
        """Word ids [B, max_length] of images [B, H, W, C] in [0, 255]; beam_width 1 is greedy search."""
        if beam_width == 1:
            return greedy_search(self.captioner, images, max_length=self.max_length)
        return beam_search(self.captioner, images, beam_width=beam_width,
                           length_penalty=self.length_penalty, max_length=self.max_length)

    def caption_pixels(self, images, beam_width: int = DEFAULT_BEAM_WIDTH) -> tf.Tensor:
        """Captions tf.string [B] of images [B, H, W, C] in [0, 255]."""
        return self.ids_to_text(self.search(images, beam_width))

    def caption_encoded(self, encoded, beam_width: int = DEFAULT_BEAM_WIDTH) -> tf.Tensor:
        """Captions tf.string [N] of encoded images tf.string [N]: the serving function."""
        return self.caption_pixels(decode_images(encoded, self.image_shape), beam_width)

    def __call__(self, images, beam_width: int = DEFAULT_BEAM_WIDTH) -> list[str]:
        """Captions of a batch of pixel arrays, through a tf.function compiled once per beam width."""
        if beam_width < 1:
            raise ZooError(f"the beam width must be at least 1, got {beam_width}")
        if beam_width not in self._compiled:
            signature = [tf.TensorSpec([None, *self.image_shape], tf.float32)]
            self._compiled[beam_width] = tf.function(  # graph code already: nothing for AutoGraph to do
                lambda images: self.caption_pixels(images, beam_width), input_signature=signature, autograph=False)
        captions = self._compiled[beam_width](tf.cast(images, tf.float32))
        return [caption.decode("utf-8") for caption in captions.numpy()]
