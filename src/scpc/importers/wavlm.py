"""WavLM checkpoints (microsoft/unilm WavLM: ``cfg`` and ``model``, what s3prl's
``upstream/wavlm`` loads): :class:`scpc.models.wavlm.WavLMEncoder` on the raw waveform,
standardised per utterance when the config says ``normalize`` (WavLM Large)."""

from __future__ import annotations

from pathlib import Path

from scpc.importers.common import Converted, Options
from scpc.importers.fairseq_wav2vec2 import convert_fairseq

DESCRIPTION = "WavLM checkpoints (microsoft/unilm, what s3prl's upstream/wavlm loads)"


def convert(src: Path, options: Options) -> Converted:
    return convert_fairseq(src, options, wavlm=True)
