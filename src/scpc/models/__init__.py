"""Encoders (latent and context networks), their registry and JSON (de)serialisation."""

import scpc.models.bert  # noqa: F401  (registers the "bert" encoder)
import scpc.models.spiral  # noqa: F401  (registers the "spiral" encoder)
import scpc.models.wav2vec2  # noqa: F401  (registers the "wav2vec2" encoder)
import scpc.models.wavlm  # noqa: F401  (registers the "wavlm" encoder)
from scpc.models.encoders import (
    CausalConvEncoder,
    CausalSelfAttentionEncoder,
    ConvEncoder,
    Encoder,
    EncoderOutput,
    EncoderSequence,
    FeedForwardEncoder,
    IdentityEncoder,
    RecurrentEncoder,
    SelfAttentionEncoder,
    encoder_from_json,
)

__all__ = [
    "CausalConvEncoder",
    "CausalSelfAttentionEncoder",
    "ConvEncoder",
    "Encoder",
    "EncoderOutput",
    "EncoderSequence",
    "FeedForwardEncoder",
    "IdentityEncoder",
    "RecurrentEncoder",
    "SelfAttentionEncoder",
    "encoder_from_json",
]
