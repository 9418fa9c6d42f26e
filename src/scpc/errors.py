"""The exceptions that command-line tools turn into a one-line message and an exit code."""

import signal


class ScpcError(Exception):
    """A problem with the user's input, reported as one line naming the file and the problem."""


class StoppedBySignal(Exception):
    """Training stopped on a signal after saving its state; the exit code is 128 + the signal."""

    def __init__(self, signum: int, step: int, state: str) -> None:
        super().__init__(
            f"stopped by {signal.Signals(signum).name} at step {step}; {state} saved, "
            "run again to resume"
        )
        self.signum = signum


def crlf_error(path: object, lineno: int) -> ScpcError:
    """Every reader of a Kaldi-style text table refuses Windows line endings alike (Python
    would drop the \r where awk and Kaldi keep it in the last field)."""
    return ScpcError(
        f"{path}:{lineno}: Windows (CRLF) line ending; convert the file first: sed -i 's/\\r$//' {path}"
    )
