"""Keeps TensorFlow's native start-up chatter (CUDA probing, CPU feature notes) off the terminal."""

import contextlib
import os
import sys

VERBOSE_ENV = "ZOO_TF_VERBOSE"  # set to 1 to see TensorFlow's start-up messages


@contextlib.contextmanager
def native_stderr_silenced():
    """Points file descriptor 2 at /dev/null while TensorFlow's C++ runtime starts.

    TF_CPP_MIN_LOG_LEVEL does not reach the absl messages printed before logging is initialized,
    so the descriptor is hidden for the import alone; Python errors raised inside still surface.
    """
    if os.environ.get(VERBOSE_ENV):
        yield
        return
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
