"""LeNet-5's spec (the architecture: `zoo.models.lenet`)."""

from zoo.preprocessing import UNIT_SCALE
from zoo.registry import ModelSpec, register

register(
    ModelSpec(
        name="lenet5",
        family="lenet",
        builder="zoo.models.lenet:lenet5",
        paper="LeCun et al., Gradient-Based Learning Applied to Document Recognition, Proc. IEEE 1998",
        default_input_shape=(32, 32, 1),
        min_input_size=32,
        default_num_classes=10,
        num_params=61_706,
        preprocessing=UNIT_SCALE,
        flops=852_400,
        fixed_size_top=True,
        # ReLU and max pooling by default: on the built-in shapes the classic tanh/average-pool
        # network stays near chance for 10 epochs where the modern one learns the task.
        options={"variant": "modern"},
    )
)
