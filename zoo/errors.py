"""The one exception type for errors a user can cause."""


class ZooError(Exception):
    """A problem the user can fix: the message says what went wrong and what to do.

    The CLI prints it as one line and exits non-zero, without a traceback.
    """
