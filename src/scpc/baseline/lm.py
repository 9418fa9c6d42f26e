"""The word n-gram LM of beam search: KenLM's ``lmplz`` when it is installed, else ours.

Both estimate interpolated modified Kneser-Ney and write ARPA. ``lmplz`` runs as the
reference runs it (``--discount_fallback 0.5 1.0 1.5``, no pruning, 8 GB of sort memory by
default); our :class:`~scpc.eval.ngram.NgramLM` holds every n-gram in memory, fine for a
corpus's transcripts (train-clean-100: 990k words) but not for the 800M-word LibriSpeech LM
corpus, which needs KenLM.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

from scpc.errors import ScpcError
from scpc.io import atomic_path


def kenlm_binary() -> str | None:
    """Path of KenLM's ``lmplz``, or None."""
    return shutil.which("lmplz")


def build(
    lines: Iterable[str],
    order: int,
    out: str | os.PathLike,
    use_kenlm: bool | None = None,
    memory: str = "8G",
) -> str:
    """Write an ARPA LM of ``order`` trained on ``lines`` to ``out``; returns the tool used.

    ``use_kenlm``: None takes ``lmplz`` when it is on the PATH.
    """
    if order < 1:
        raise ScpcError(f"LM order must be at least 1, not {order}")
    lmplz = kenlm_binary()
    if use_kenlm and lmplz is None:
        raise ScpcError("KenLM's lmplz is not on the PATH")
    if lmplz is not None and use_kenlm is not False:
        _kenlm(lmplz, lines, order, out, memory)
        return "kenlm"
    from scpc.eval.ngram import NgramLM

    NgramLM.train((line.split() for line in lines), order).write_arpa(out)
    return "scpc"


def _kenlm(lmplz: str, lines: Iterable[str], order: int, out, memory: str) -> None:
    cmd = [lmplz, "-o", str(order), "-S", memory, "--discount_fallback", "0.5", "1.0", "1.5"]
    # stderr to a file: lmplz's progress could fill a pipe nobody reads while we write stdin
    with atomic_path(out) as tmp, open(tmp, "wb") as f, tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=f, stderr=log)
        assert proc.stdin is not None
        try:
            for line in lines:
                proc.stdin.write((line + "\n").encode())
            proc.stdin.close()
        except BrokenPipeError:
            pass
        code = proc.wait()
        log.seek(0)
        err = log.read().decode(errors="replace")
        if code != 0:
            last = err.strip().splitlines()[-1] if err.strip() else f"exit {proc.returncode}"
            raise ScpcError(f"{out}: lmplz failed: {last}")
    print(f"lm: lmplz wrote {Path(out)}", file=sys.stderr)
