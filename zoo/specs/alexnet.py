"""AlexNet's spec (the architecture: `zoo.models.alexnet`)."""

from zoo.preprocessing import TORCH
from zoo.registry import ModelSpec, register
from zoo.weights.catalogue import released_weights

register(
    ModelSpec(
        name="alexnet",
        family="alexnet",
        builder="zoo.models.alexnet:alexnet",
        paper="Krizhevsky et al., ImageNet Classification with Deep Convolutional Neural Networks, NeurIPS 2012",
        default_input_shape=(227, 227, 3),
        min_input_size=67,
        default_num_classes=1000,
        num_params=60_965_224,
        preprocessing=TORCH,
        flops=1_455_529_568,
        fixed_size_top=True,
        options={"variant": "paper", "towers": None, "dropout": 0.5},
        weights=released_weights("alexnet"),
    )
)
