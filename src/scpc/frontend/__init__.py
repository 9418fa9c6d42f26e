"""Feature front-ends: audio (N, S) in [-1, 1] at 16 kHz to features (N, T, F).

A front-end is built from a JSON config (``conf/feats/<feat_type>.json``) that is stored
verbatim in checkpoints and feature dirs:

- ``{"name": "raw"}``: the samples themselves, F = 1, one frame per sample;
- any front-end may carry ``"input_scale"``: the waveform is multiplied by it first (32768
  for models trained on 16-bit integer sample values, as the reference scpc's were);
- ``{"name": "stft", "bank": {...}, ...}``: pydrobert-speech's STFT filter-bank computer,
  re-implemented in torch (see :mod:`scpc.frontend.stft`);
- ``{"name": "online_mel", ...}``: s3prl's on-the-fly log mel / linear features of Mockingjay,
  TERA and AALBERT (see :mod:`scpc.frontend.online_mel`);
- ``{"name": "nemo_mel", ...}``: NeMo's log-mel features of SPIRAL (see
  :mod:`scpc.frontend.nemo_mel`);
- ``{"name": "kaldi", "num_features": F, "frame_shift_ms": 10}``: features imported from a
  Kaldi table (``steps/make_feats.sh --import-scp``); it describes them but cannot compute
  them from audio.

Importing this package does not import torch (checking a config needs none); building a
front-end, or asking for :class:`Frontend`, does.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from scpc.errors import ScpcError
from scpc.frontend.config import check_config

if TYPE_CHECKING:
    from scpc.frontend.base import Frontend

__all__ = ["Frontend", "check_config", "frontend_from_config", "load_frontend_config"]


def __getattr__(name: str) -> Any:
    if name == "Frontend":
        from scpc.frontend.base import Frontend

        return Frontend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def frontend_from_config(config: dict[str, Any]) -> Frontend:
    """Build the front-end a config describes; ScpcError on unknown names or keys."""
    name = check_config(config)
    if name == "raw":
        from scpc.frontend.base import RawFrontend

        return RawFrontend(config)
    if name == "online_mel":
        from scpc.frontend.online_mel import OnlineMelFrontend

        return OnlineMelFrontend(config)
    if name == "nemo_mel":
        from scpc.frontend.nemo_mel import NemoMelFrontend

        return NemoMelFrontend(config)
    if name == "kaldi":
        from scpc.frontend.base import KaldiFeatures

        return KaldiFeatures(config)
    if name == "mfcc":
        from scpc.frontend.mfcc import MfccFrontend

        return MfccFrontend(config)
    from scpc.frontend.stft import StftFrontend

    return StftFrontend(config)


def load_frontend_config(path: str | os.PathLike) -> dict[str, Any]:
    """Read a front-end JSON file and check it."""
    try:
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
    except FileNotFoundError:
        raise ScpcError(f"{path}: no such front-end config") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ScpcError(f"{path}: not a valid JSON front-end config ({e})") from None
    try:
        check_config(config)
    except ScpcError as e:
        raise ScpcError(f"{path}: {e}") from None
    return config
