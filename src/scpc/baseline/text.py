"""Text corpora for the BPE model and the word LM: one sentence a line.

A Kaldi ``text`` file (``<utt> <words...>``) gives its words without the utterance id; any
other file (gzip when it ends in ``.gz``, e.g. LibriSpeech's ``librispeech-lm-norm.txt.gz``)
gives its lines as they are. Blank lines are skipped.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterator, Sequence

from scpc.errors import ScpcError


def sentences(paths: Sequence[str | os.PathLike], kaldi: bool) -> Iterator[str]:
    """Each non-empty sentence of ``paths`` in turn, whitespace normalised."""
    for path in paths:
        opener = gzip.open if str(path).endswith(".gz") else open
        try:
            with opener(path, "rt", encoding="utf-8") as f:
                for line in f:
                    words = line.split()
                    if kaldi:
                        words = words[1:]
                    if words:
                        yield " ".join(words)
        except FileNotFoundError:
            raise ScpcError(f"{path}: no such file") from None
        except UnicodeDecodeError:
            raise ScpcError(f"{path}: not UTF-8 text") from None
        except (OSError, EOFError) as e:
            raise ScpcError(f"{path}: unreadable ({getattr(e, 'strerror', None) or e})") from None
