"""zerospeech-libriabx2 (``zrc_abx2``), the ZeroSpeech ABX reference scorer, behind one call.

It is installed without its dependencies (utils/setup_venv.sh) because they pull a
torchaudio that cannot be imported here; torchaudio is only used on its CPC-checkpoint path,
so an empty stand-in module is registered before the import when the real one is missing.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import types
import warnings
from typing import Any

from scpc.errors import ScpcError
from scpc.eval import abx


def _import() -> Any:
    try:
        import torchaudio  # noqa: F401
    except Exception:  # absent, or present but broken (a CUDA build): stand in for it
        sys.modules["torchaudio"] = types.ModuleType("torchaudio")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from zrc_abx2 import eval_ABX
    except ImportError as e:
        raise ScpcError(
            f"zerospeech-libriabx2 is not installed ({e}); utils/setup_venv.sh installs it"
        ) from None
    return eval_ABX


def available() -> bool:
    try:
        _import()
    except ScpcError:
        return False
    return True


def score(
    feat_dir: str | os.PathLike,
    item_file: str | os.PathLike,
    speaker_mode: str,
    context_mode: str,
    distance: str = "cosine",
    max_size_group: int = abx.MAX_SIZE_GROUP,
    max_x_across: int = abx.MAX_X_ACROSS,
    seed: int = abx.SEED,
    frame_shift: float = 0.01,
    extension: str = ".pt",
) -> float:
    """ABX error rate (a fraction) of one condition, as zrc_abx2 computes it."""
    eval_abx = _import()
    args = eval_abx.EvalArgs(
        path_data=os.fspath(feat_dir),
        path_item_file=os.fspath(item_file),
        file_extension=extension,
        feature_size=frame_shift,
        cuda=False,
        speaker_mode=speaker_mode,
        context_mode=context_mode,
        distance_mode=distance,
        max_size_group=max_size_group,
        max_x_across=max_x_across,
        seed=seed,
    )
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        results = eval_abx.EvalABX().eval_abx(args)
    matching = [
        r["score"]
        for r in results
        if r["abx-s-condition"] == speaker_mode and r["abx-c-condition"] == context_mode
    ]
    if len(matching) != 1:
        raise ScpcError(f"zrc_abx2 gave no score for {speaker_mode}/{context_mode}: {results}")
    return float(matching[0])
