"""The serving computation of a classifier, in TensorFlow ops: images in; top-k class names, their
probabilities and all probabilities out. The export writes it into its SavedModel, and predict
runs it directly."""

from __future__ import annotations

import tensorflow as tf

from finetune.serving.loading import LoadedModel
from zoo.eval_transform import EvalTransform
from zoo.layers import eval_transform, preprocessing_layer


class Classifier:
    """The serving computation, in TensorFlow ops: images in; top-k class names, their
    probabilities and all probabilities out.

    Encoded images (JPEG, PNG, GIF, BMP, WebP) are decoded as RGB and converted to the model's
    channels; every image is resized and cropped to the model's input by the model's evaluation
    transform (`zoo.layers.eval_transform`: its weights' source's, or the squash), then preprocessed.
    """

    def __init__(self, loaded: LoadedModel, top_k: int = 5, class_table=None):
        """`class_table` maps class indices (int64) to names; by default one is built in memory."""
        self.model = loaded.model
        self.preprocess = preprocessing_layer(loaded.preprocessing)
        self.height, self.width, self.channels = loaded.input_shape
        self.evaluation = loaded.evaluation
        self.top_k = max(1, min(int(top_k), len(loaded.class_names)))
        self.class_table = class_table or class_name_table(loaded.class_names)

    def encoded_signature(self):
        return [tf.TensorSpec([None], tf.string, name="images")]

    def pixels_signature(self):
        return [tf.TensorSpec([None, None, None, self.channels], tf.uint8, name="images")]

    def classify_encoded(self, images):
        """A batch of encoded image files (tf.string [N]) -> classes, scores, probabilities."""
        pixels = tf.map_fn(self._decode, images,
                           fn_output_signature=tf.TensorSpec([self.height, self.width, self.channels], tf.float32))
        return self._classify(pixels)

    def classify_pixels(self, images):
        """A batch of uint8 images of one size (N, any height, any width, channels) -> classes, scores,
        probabilities."""
        return self._classify(eval_transform.apply(images, self.evaluation, (self.height, self.width)))

    def _decode(self, encoded):
        return decode_image(encoded, (self.height, self.width, self.channels), self.evaluation)

    def _classify(self, pixels):
        probabilities = tf.cast(self.model(self.preprocess(pixels), training=False), tf.float32)
        scores, indices = tf.math.top_k(probabilities, k=self.top_k)
        classes = self.class_table.lookup(tf.cast(indices, tf.int64))
        return {"classes": classes, "scores": scores, "probabilities": probabilities}


def decode_image(encoded, input_shape, evaluation: EvalTransform):
    """One encoded image file -> float32 pixels in [0, 255] at `input_shape` (height, width,
    channels): decoded as RGB, resized and cropped by `evaluation`, converted to gray for one channel."""
    height, width, channels = input_shape
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    image = eval_transform.apply(image, evaluation, (height, width))
    if channels == 1:
        image = tf.image.rgb_to_grayscale(image)
    return tf.ensure_shape(image, [height, width, channels])


def class_name_table(class_names, labels_file=None):
    """A lookup table from class index to name; from `labels_file` (then saved as a SavedModel asset)
    or from the names in memory."""
    if labels_file is not None:
        initializer = tf.lookup.TextFileInitializer(
            str(labels_file), key_dtype=tf.int64, key_index=tf.lookup.TextFileIndex.LINE_NUMBER,
            value_dtype=tf.string, value_index=tf.lookup.TextFileIndex.WHOLE_LINE)
    else:
        initializer = tf.lookup.KeyValueTensorInitializer(
            tf.range(len(class_names), dtype=tf.int64), tf.constant(list(class_names), dtype=tf.string))
    return tf.lookup.StaticHashTable(initializer, default_value="")
