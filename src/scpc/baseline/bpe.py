"""SentencePiece BPE targets, as the reference: ``V`` pieces and one more output, the blank.

SentencePiece is trained with ``V + 1`` pieces, the last of which is ``<unk>`` (no bos, eos
or pad). The pieces ``0 .. V-1`` are the CTC targets; id ``V`` is reused as the CTC blank,
so the model has ``V + 1`` outputs and the blank is the last one. With every character of
the BPE text covered, the training transcripts never need ``<unk>``; characters of other
text that the model lacks are left out of its targets (the word error rate compares words
as written).
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from scpc.errors import ScpcError
from scpc.io import atomic_write

BLANK_TOKEN = "<blank>"


def train(
    lines: Iterable[str],
    out: str | os.PathLike,
    vocab_size: int,
    character_coverage: float = 1.0,
    input_sentence_size: int = 0,
) -> Tokenizer:
    """Train BPE on ``lines`` (sentences); write the model to ``out`` atomically."""
    import sentencepiece as spm

    args = dict(
        model_type="bpe",
        vocab_size=vocab_size + 1,
        unk_id=vocab_size,
        bos_id=-1,
        eos_id=-1,
        pad_id=-1,
        character_coverage=character_coverage,
        minloglevel=2,
        num_threads=max(1, min(os.cpu_count() or 1, 16)),
    )
    if input_sentence_size:
        args.update(input_sentence_size=input_sentence_size, shuffle_input_sentence=True)
    model = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_writer=model, **args)
    except RuntimeError as e:
        raise ScpcError(
            f"{out}: SentencePiece cannot make {vocab_size} BPE pieces of this text; lower the "
            f"vocabulary size ({str(e).splitlines()[0]})"
        ) from None
    with atomic_write(out, "wb") as f:
        f.write(model.getvalue())
    return Tokenizer(out)


class Tokenizer:
    """Text to CTC target ids and back; ``vocab`` names every output, the blank last."""

    def __init__(self, path: str | os.PathLike) -> None:
        import sentencepiece as spm

        self.path = Path(path)
        if not self.path.is_file():
            raise ScpcError(f"{path}: no such file")
        try:
            self.sp = spm.SentencePieceProcessor(model_file=str(path))
        except (OSError, RuntimeError):
            raise ScpcError(f"{path}: not a SentencePiece model") from None
        self.blank = self.sp.get_piece_size() - 1
        if self.sp.unk_id() != self.blank:
            raise ScpcError(f"{path}: <unk> is not the last piece (not made by scpc-baseline)")
        self.pieces = [self.sp.id_to_piece(i) for i in range(self.blank)]
        self.vocab = [*self.pieces, BLANK_TOKEN]

    @property
    def num_classes(self) -> int:
        """Model outputs: the pieces and the blank."""
        return len(self.vocab)

    def encode(self, text: str) -> list[int]:
        """Piece ids of ``text``; characters outside the model (``<unk>``) are left out."""
        return [i for i in self.sp.encode(text) if i != self.blank]

    def decode(self, ids: Sequence[int]) -> str:
        return self.sp.decode([int(i) for i in ids])
