"""The one exception type that command-line tools turn into a one-line error and exit 1."""


class ScpcError(Exception):
    """A problem with the user's input, reported as one line naming the file and the problem."""
