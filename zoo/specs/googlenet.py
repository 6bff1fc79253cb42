"""GoogLeNet's spec (the architecture: `zoo.models.googlenet`)."""

from zoo.preprocessing import TORCH
from zoo.registry import ModelSpec, register
from zoo.weights.catalogue import released_weights

register(
    ModelSpec(
        name="googlenet",
        family="googlenet",
        builder="zoo.models.googlenet:googlenet",
        paper="Szegedy et al., Going Deeper with Convolutions, CVPR 2015",
        default_input_shape=(224, 224, 3),
        min_input_size=32,
        default_num_classes=1000,
        num_params=6_998_552,
        preprocessing=TORCH,
        flops=3_191_832_832,
        options={"variant": "paper", "batch_norm": None, "auxiliary": False, "dropout": 0.4, "norm": "batch"},
        weights=released_weights("googlenet"),
    )
)
