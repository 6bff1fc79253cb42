"""Custom layers of the zoo, registered for `.keras` files loaded with safe_mode=True."""

from zoo.layers.lrn import LocalResponseNormalization

__all__ = ["LocalResponseNormalization"]
