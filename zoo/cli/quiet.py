"""Keeps TensorFlow's native start-up chatter (oneDNN, CUDA probing) off the terminal."""

import contextlib
import os
import sys


@contextlib.contextmanager
def native_stderr_silenced():
    """Points file descriptor 2 at /dev/null while TensorFlow's C++ runtime starts.

    TF_CPP_MIN_LOG_LEVEL does not reach the absl messages printed before logging is initialized,
    so the CLI hides the descriptor for the import alone; Python errors raised inside still surface.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def start_tensorflow_quietly() -> None:
    with native_stderr_silenced():
        import tensorflow as tf

        tf.config.list_physical_devices()
