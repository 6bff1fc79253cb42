"""The image captioner of Show and Tell (Vinyals, Toshev, Bengio, Erhan. "Show and Tell: A Neural
Image Caption Generator", CVPR 2015): a CNN encoder and an LSTM or GRU language model.

As in the paper, the image embedding is the decoder's first input (x_-1 = W_I CNN(I)), then the
start token and the words of the caption (x_t = W_e S_t); the word after each input is predicted
by a softmax over the vocabulary. The recurrent layers read the image step once and carry its
state into the words, so the same weights serve training (teacher forcing over whole captions)
and step-by-step decoding (`zoo.decoding`).

The encoder is any zoo backbone without its classifier, average-pooled (or max-pooled, or
flattened to keep the layout), with the backbone's preprocessing inside, so the captioner takes
pixels in [0, 255]. It is frozen by default (it then runs in inference mode and its features can
be cached), or trained with the decoder. Its features are standardized with statistics of the
training images before the image embedding: pooled CNN features share a large positive mean that
would otherwise saturate the recurrent gates on the image step.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

from zoo.errors import ZooError
from zoo.factory import create
from zoo.layers import preprocessing_layer
from zoo.registry import get_spec
from zoo.specs.captioner import DEFAULT_INPUT_SHAPE, DEFAULTS
from zoo.text import SPECIAL_TOKENS

RNN_LAYERS = {"lstm": layers.LSTM, "gru": layers.GRU}
ENCODER_POOLING = ("avg", "max", "flatten", None)


def build_encoder(backbone: str, input_shape, *, pooling="avg", trainable=False, name="encoder"):
    """Pixels in [0, 255] -> image features: the backbone's preprocessing, then the backbone
    without its classifier. A frozen backbone runs in inference mode (BatchNorm statistics fixed).

    pooling: "avg" or "max" (a vector per image), "flatten" (the last feature map as one vector,
    which keeps where things are), or None (the feature map itself).
    """
    if backbone == "captioner":
        raise ZooError("a captioner's backbone is an image model such as resnet18, not another captioner")
    if pooling not in ENCODER_POOLING:
        raise ZooError(f"encoder pooling must be one of {', '.join(map(str, ENCODER_POOLING))}, not {pooling!r}")
    spec = get_spec(backbone)
    features = create(backbone, include_top=False, pooling=None if pooling == "flatten" else pooling,
                      input_shape=input_shape)
    features.trainable = trainable
    images = keras.Input(shape=features.input_shape[1:], name="image")
    preprocessing = preprocessing_layer(spec.preprocessing.for_channels(features.input_shape[-1]), "image_preprocessing")
    x = preprocessing(images)
    x = features(x) if trainable else features(x, training=False)
    if pooling == "flatten":
        x = layers.Flatten(name="flatten")(x)
    return keras.Model(images, x, name=name)


@keras.saving.register_keras_serializable(package="zoo")
class FeatureStandardization(layers.Layer):
    """(features - mean) / std per feature, with statistics set from training features by `adapt`;
    the identity until then. The variance gets a floor, `variance_floor` times the mean variance of
    all features, so that features which barely vary in training are not blown up into noise."""

    def __init__(self, variance_floor=0.1, **kwargs):
        super().__init__(**kwargs)
        self.variance_floor = float(variance_floor)

    def build(self, input_shape):
        size = input_shape[-1]
        self.mean = self.add_weight(shape=(size,), initializer="zeros", trainable=False, name="mean")
        self.inverse_std = self.add_weight(shape=(size,), initializer="ones", trainable=False, name="inverse_std")

    def adapt(self, features) -> None:
        features = np.asarray(features, dtype=np.float64).reshape(-1, self.mean.shape[0])
        variance = features.var(axis=0)
        floor = max(self.variance_floor * float(variance.mean()), 1e-12)
        self.mean.assign(features.mean(axis=0).astype("float32"))
        self.inverse_std.assign((1.0 / np.sqrt(variance + floor)).astype("float32"))

    def call(self, inputs):
        return (inputs - self.mean) * self.inverse_std

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(variance_floor=self.variance_floor)
        return config


@keras.saving.register_keras_serializable(package="zoo")
class Captioner(keras.Model):
    """Show and Tell: images [B, H, W, C] and caption ids [B, T] -> next-word logits [B, T, V].

    Args:
        vocabulary: the token list from `zoo.text.build_vocabulary` (special tokens first); saved
            with the model. None builds a model of `vocabulary_size` tokens that cannot yet decode.
        vocabulary_size: the number of tokens when no vocabulary is given.
        backbone: a registered image model used as the encoder.
        rnn: "lstm" (as in the paper) or "gru".
        image_shape: (height, width, channels) of the input images.
        embedding_dim: size of the word embeddings and of the projected image embedding.
        units: state size of each recurrent layer.
        num_layers: stacked recurrent layers.
        dropout: on the embeddings, between recurrent layers and before the softmax.
        train_encoder: train the backbone with the decoder instead of freezing it.
        encoder_pooling: how the backbone's last feature map becomes a vector: "avg" (as in the
            paper), "max", or "flatten" (keeps the layout, for captions that say where things are).
        max_caption_length: the most words a decoded caption has (and training captions keep).
    """

    def __init__(self, vocabulary=None, *, vocabulary_size=None, backbone=DEFAULTS["backbone"],
                 rnn=DEFAULTS["rnn"], image_shape=DEFAULT_INPUT_SHAPE, embedding_dim=DEFAULTS["embedding_dim"],
                 units=DEFAULTS["units"], num_layers=DEFAULTS["num_layers"], dropout=DEFAULTS["dropout"],
                 train_encoder=DEFAULTS["train_encoder"], encoder_pooling=DEFAULTS["encoder_pooling"],
                 max_caption_length=DEFAULTS["max_caption_length"],
                 name="captioner", **kwargs):
        if vocabulary is not None:
            vocabulary = [str(token) for token in vocabulary]
            if tuple(vocabulary[: len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS:
                raise ZooError(f"a caption vocabulary starts with the special tokens {SPECIAL_TOKENS}; "
                               "build it with zoo.text.build_vocabulary")
            vocabulary_size = len(vocabulary)
        if vocabulary_size is None or vocabulary_size <= len(SPECIAL_TOKENS):
            raise ZooError(f"a captioner needs a vocabulary of more than {len(SPECIAL_TOKENS)} tokens, "
                           f"got {vocabulary_size}")
        if rnn not in RNN_LAYERS:
            raise ZooError(f"rnn must be one of {', '.join(RNN_LAYERS)}, not {rnn!r}")
        if num_layers < 1:
            raise ZooError(f"num_layers must be at least 1, got {num_layers}")
        if not 0.0 <= dropout < 1.0:
            raise ZooError(f"dropout must be in [0, 1), got {dropout}")
        if max_caption_length < 1:
            raise ZooError(f"max_caption_length must be at least 1, got {max_caption_length}")

        if encoder_pooling is None:
            raise ZooError("a captioner's encoder pools its feature map: avg, max or flatten")
        encoder = build_encoder(backbone, tuple(image_shape), pooling=encoder_pooling, trainable=train_encoder)
        decoder = build_decoder(encoder.output_shape[-1], vocabulary_size, rnn=rnn, embedding_dim=embedding_dim,
                                units=units, num_layers=num_layers, dropout=dropout)
        images = keras.Input(shape=encoder.input_shape[1:], name="image")
        tokens = keras.Input(shape=(None,), dtype="int32", name="caption_tokens")
        logits = decoder([encoder(images), tokens])
        super().__init__(inputs=[images, tokens], outputs=logits, name=name, **kwargs)

        self.encoder = encoder
        self.decoder = decoder
        self.vocabulary = vocabulary
        self.vocabulary_size = int(vocabulary_size)
        self.backbone = backbone
        self.rnn = rnn
        self.image_shape = tuple(int(size) for size in encoder.input_shape[1:])
        self.embedding_dim = int(embedding_dim)
        self.units = int(units)
        self.num_layers = int(num_layers)
        self.dropout = float(dropout)
        self.train_encoder = bool(train_encoder)
        self.encoder_pooling = encoder_pooling
        self.max_caption_length = int(max_caption_length)

    def get_config(self):
        return {
            "name": self.name,
            "vocabulary": self.vocabulary,
            "vocabulary_size": self.vocabulary_size,
            "backbone": self.backbone,
            "rnn": self.rnn,
            "image_shape": list(self.image_shape),
            "embedding_dim": self.embedding_dim,
            "units": self.units,
            "num_layers": self.num_layers,
            "dropout": self.dropout,
            "train_encoder": self.train_encoder,
            "encoder_pooling": self.encoder_pooling,
            "max_caption_length": self.max_caption_length,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        return cls(**config)

    def adapt_feature_statistics(self, features) -> None:
        """Sets the standardization of image features from features of training images [N, F]."""
        self.decoder.get_layer("image_features_norm").adapt(features)

    # Step-by-step decoding: the same layers as the training graph, one time step at a time.

    def _recurrent_layers(self):
        return [self.decoder.get_layer(f"{self.rnn}_{index}") for index in range(1, self.num_layers + 1)]

    def initial_states(self, images):
        """The recurrent states after the image step: a list (per layer) of lists of [B, units]."""
        features = self.encoder(images, training=False)
        features = self.decoder.get_layer("image_features_norm")(features)
        x = self.decoder.get_layer("image_embedding")(features)
        states = []
        for layer in self._recurrent_layers():
            zeros = layer.cell.get_initial_state(keras.ops.shape(x)[0])
            x, layer_states = layer.cell(x, zeros, training=False)
            states.append(list(layer_states))
        return states

    def next_word_logits(self, tokens, states):
        """One step: the previous tokens [B] and states -> logits [B, V] over the next word, new states."""
        # The embedding table itself: the layer would attach its padding mask, which cells refuse.
        x = keras.ops.take(self.decoder.get_layer("word_embedding").embeddings, tokens, axis=0)
        new_states = []
        for layer, layer_states in zip(self._recurrent_layers(), states):
            x, layer_states = layer.cell(x, layer_states, training=False)
            new_states.append(list(layer_states))
        return self.decoder.get_layer("word_logits")(x), new_states


def build_decoder(feature_size: int, vocabulary_size: int, *, rnn: str, embedding_dim: int, units: int,
                  num_layers: int, dropout: float, name: str = "decoder"):
    """Image features [B, F] and caption ids [B, T] -> next-word logits [B, T, V], padding masked.

    The image embedding is a one-step sequence run through the recurrent layers first; their final
    states start the word sequence, which is the paper's image-as-first-input unrolled in two calls
    of the same layers.
    """
    features = keras.Input(shape=(feature_size,), name="image_features")
    tokens = keras.Input(shape=(None,), dtype="int32", name="caption_tokens")
    # Pooled CNN features share a large positive mean; standardized with the training images'
    # statistics (`adapt_feature_statistics`), what tells images apart reaches the recurrent gates
    # without saturating them. Until adapted it passes features through unchanged.
    image_step = FeatureStandardization(name="image_features_norm")(features)
    image_step = layers.Dense(embedding_dim, name="image_embedding")(image_step)
    image_step = layers.Reshape((1, embedding_dim), name="image_step")(image_step)
    words = layers.Embedding(vocabulary_size, embedding_dim, mask_zero=True, name="word_embedding")(tokens)
    embedding_dropout = layers.Dropout(dropout, name="embedding_dropout")
    image_step, words = embedding_dropout(image_step), embedding_dropout(words)
    for index in range(1, num_layers + 1):
        recurrent = RNN_LAYERS[rnn](units, return_sequences=True, return_state=True, name=f"{rnn}_{index}")
        image_step, *states = recurrent(image_step)
        words = recurrent(words, initial_state=states)[0]
        layer_dropout = layers.Dropout(dropout, name=f"{rnn}_{index}_dropout")
        image_step, words = layer_dropout(image_step), layer_dropout(words)
    logits = layers.Dense(vocabulary_size, name="word_logits")(words)
    return keras.Model([features, tokens], logits, name=name)


def captioner(input_shape, num_classes, include_top, pooling, name, **options):
    """The registry's builder: `num_classes` is the vocabulary size when no vocabulary is given;
    without its top the captioner is its image encoder (pooled as asked)."""
    if not include_top:
        return build_encoder(options["backbone"], input_shape, pooling=pooling or options["encoder_pooling"],
                             trainable=options["train_encoder"], name=f"{name}_encoder")
    if None in input_shape[:2]:
        raise ZooError("a captioner resizes every image to one size: give input_shape a height and width")
    return Captioner(vocabulary_size=num_classes, image_shape=input_shape, name=name, **options)
