"""The captioner's spec (the model: `zoo.models.captioner`), with the defaults of its options."""

from zoo.preprocessing import Preprocessing
from zoo.registry import ModelSpec, register

PAPER = "Vinyals et al., Show and Tell: A Neural Image Caption Generator, CVPR 2015"

# The captioner takes pixels in [0, 255]: its encoder applies the backbone's own preprocessing.
PIXELS = Preprocessing("pixels", mean=(0.0,), std=(1.0,), channel_order="rgb")

DEFAULTS = {
    "backbone": "resnet18",
    "rnn": "lstm",
    "vocabulary": None,
    "embedding_dim": 256,
    "units": 256,
    "num_layers": 1,
    "dropout": 0.3,
    "train_encoder": False,
    "encoder_pooling": "avg",
    "max_caption_length": 20,
}
DEFAULT_INPUT_SHAPE = (64, 64, 3)
DEFAULT_VOCABULARY_SIZE = 1000


register(
    ModelSpec(
        name="captioner",
        family="captioner",
        builder="zoo.models.captioner:captioner",
        paper=PAPER,
        default_input_shape=DEFAULT_INPUT_SHAPE,
        min_input_size=32,  # resnet18's; another backbone checks its own minimum
        default_num_classes=DEFAULT_VOCABULARY_SIZE,
        num_params=12_356_776,
        preprocessing=PIXELS,
        options=dict(DEFAULTS),
        test_input_size=32,
    )
)
