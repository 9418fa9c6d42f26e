"""Released checkpoints of other systems as scpc ``best.ckpt`` files (``scpc-import``).

One module per source format; each has ``DESCRIPTION`` and ``convert(src, options)``, which
reads the source, rebuilds its model with scpc's encoders and returns a
:class:`~scpc.importers.common.Converted`. :func:`import_checkpoint` writes it with its
provenance (the source file's name and sha256).
"""

from __future__ import annotations

import importlib
from types import ModuleType

from scpc.errors import ScpcError

# format name -> module; the names are what users type after scpc-import
FORMATS = {
    "scpc-ref": "scpc.importers.scpc_reference",
    "cpc-audio": "scpc.importers.cpc_audio",
    "mockingjay": "scpc.importers.s3prl_transformer",
    "tera": "scpc.importers.s3prl_transformer",
    "audio_albert": "scpc.importers.s3prl_transformer",
    "spiral": "scpc.importers.spiral_nemo",
    "hubert": "scpc.importers.fairseq_wav2vec2",
    "wav2vec2": "scpc.importers.fairseq_wav2vec2",
    "wavlm": "scpc.importers.wavlm",
    "hf": "scpc.importers.huggingface",
    "spin": "scpc.importers.spin_lightning",
}


def format_module(name: str) -> ModuleType:
    if name not in FORMATS:
        raise ScpcError(f"unknown checkpoint format {name!r} (known: {', '.join(FORMATS)})")
    return importlib.import_module(FORMATS[name])
