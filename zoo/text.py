"""Caption text: the one normalization used at training, decoding and scoring, and the vocabulary.

Token ids follow Keras's `TextVectorization`: 0 is padding (""), 1 the out-of-vocabulary token,
then the start and end tokens, then the words of the training captions, most frequent first.
"""

from __future__ import annotations

import collections
from typing import Iterable, Sequence

import keras
import tensorflow as tf

PADDING_TOKEN = ""
UNKNOWN_TOKEN = "[UNK]"
START_TOKEN = "[start]"
END_TOKEN = "[end]"
SPECIAL_TOKENS = (PADDING_TOKEN, UNKNOWN_TOKEN, START_TOKEN, END_TOKEN)
PADDING_ID, UNKNOWN_ID, START_ID, END_ID = range(len(SPECIAL_TOKENS))

# The punctuation Keras's "lower_and_strip_punctuation" removes; brackets included, so no caption
# can spell a special token.
_PUNCTUATION = r'[!"#$%&()\*\+,\-\./:;<=>?@\[\\\]^_`{|}~\']'


def normalize_captions(captions) -> tf.Tensor:
    """Lower-cases, strips punctuation and collapses whitespace: strings (any shape) in, tf.string out.

    The one normalization of the project: the vocabulary, the training targets and the BLEU
    references all go through it, so a word is spelt the same way everywhere.
    """
    text = tf.strings.lower(tf.convert_to_tensor(captions, dtype=tf.string), encoding="utf-8")
    text = tf.strings.regex_replace(text, _PUNCTUATION, "")
    text = tf.strings.regex_replace(text, r"\s+", " ")
    return tf.strings.strip(text)


def caption_words(captions: Sequence[str | bytes]) -> list[list[str]]:
    """Normalized captions split into words, for scoring and counting."""
    if len(captions) == 0:
        return []
    normalized = normalize_captions(list(captions)).numpy()
    return [caption.decode("utf-8").split() for caption in normalized]


def build_vocabulary(captions: Iterable[str | bytes], *, max_size: int | None = None,
                     min_count: int = 1) -> list[str]:
    """The token list (index -> token) of a caption corpus: special tokens, then words by frequency.

    Pass the training captions only. Words seen fewer than `min_count` times, and the rarest words
    beyond `max_size` tokens in all (special tokens included), map to the unknown token.
    Ties in frequency are broken alphabetically, so the same corpus always gives the same ids.
    """
    if max_size is not None and max_size <= len(SPECIAL_TOKENS):
        raise ValueError(f"max_size must leave room for words beyond the {len(SPECIAL_TOKENS)} special tokens")
    counts = collections.Counter(word for words in caption_words(list(captions)) for word in words)
    words = sorted((word for word, count in counts.items() if count >= min_count),
                   key=lambda word: (-counts[word], word))
    if max_size is not None:
        words = words[: max_size - len(SPECIAL_TOKENS)]
    return [*SPECIAL_TOKENS, *words]


def caption_vectorizer(vocabulary: Sequence[str]) -> keras.layers.TextVectorization:
    """A TextVectorization over a `build_vocabulary` list; it takes normalized text, returns ragged ids."""
    if tuple(vocabulary[: len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS:
        raise ValueError(f"a caption vocabulary starts with {SPECIAL_TOKENS}, not {tuple(vocabulary[:4])}")
    return keras.layers.TextVectorization(
        standardize=None, split="whitespace", output_mode="int", ragged=True,
        vocabulary=list(vocabulary[2:]),  # TextVectorization adds padding and unknown itself
        name="caption_vectorizer",
    )


def encode_captions(vectorizer: keras.layers.TextVectorization, captions, max_length: int) -> tf.Tensor:
    """Captions [N] -> int32 ids [N, max_length + 2]: start, at most max_length words, end, padding.

    Works eagerly and inside tf.data. The model reads ids[:, :-1] and learns to predict ids[:, 1:].
    """
    words = vectorizer(normalize_captions(captions))[:, :max_length]
    words = tf.cast(words, tf.int32)
    rows = tf.shape(words.row_lengths())[0]
    start = tf.fill([rows, 1], START_ID)
    end = tf.fill([rows, 1], END_ID)
    ids = tf.concat([start, words, end], axis=1)
    return ids.to_tensor(default_value=PADDING_ID, shape=[None, max_length + 2])


def ids_to_text(vocabulary: Sequence[str], ids: Iterable[int]) -> str:
    """Token ids -> caption in Python, stopping at the end token and leaving out special tokens."""
    words = []
    for index in ids:
        index = int(index)
        if index == END_ID:
            break
        if index >= len(SPECIAL_TOKENS):
            words.append(vocabulary[index])
    return " ".join(words)
