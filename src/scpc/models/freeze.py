"""An encoder's layers in order, for training only the last few (Spin's continued training).

A layer is the set of modules behind one exposed hidden state: each Transformer layer of an
attention encoder (the last with the final LayerNorm; with shared layers, the one shared
layer), each layer of SPIRAL's last block (earlier blocks and its convolutions count as one
layer before them), each Transformer layer of wav2vec 2.0 / HuBERT / WavLM (the feature
extractor, projection and position convolution count as one layer before them, as Spin's
"0" and "pos"; the final LayerNorm of pre-LN models goes with the last layer), and a whole encoder for the others (a conv stack, an LSTM, a linear
map). Parameter-free encoders (CMVN, identity) have no layer.
"""

from __future__ import annotations

from torch import nn

from scpc.errors import ScpcError
from scpc.models.encoders import Encoder, EncoderSequence, _Attention
from scpc.models.spiral import SpiralEncoder
from scpc.models.wav2vec2 import Wav2Vec2Encoder


def layer_groups(encoder: Encoder) -> list[list[nn.Module]]:
    """The encoder's trainable layers, first to last, each a list of modules."""
    if isinstance(encoder, EncoderSequence):
        return [g for e in encoder.encoders for g in layer_groups(e)]
    if isinstance(encoder, _Attention):
        extra = [m for m in (getattr(encoder, "input_norm", None),) if m is not None]
        if len(encoder.layers) == 1:
            groups = [[*extra, encoder.layers[0], encoder.norm]]
        else:
            groups = [[layer] for layer in encoder.layers]
            groups[0] = extra + groups[0]
            groups[-1].append(encoder.norm)
    elif isinstance(encoder, SpiralEncoder):
        *early, last = encoder.blocks
        front = [*early, *last.convs, last.position]
        groups = [front] + [[layer] for layer in last.layers]
        groups[-1].append(last.norm)
    elif isinstance(encoder, Wav2Vec2Encoder):
        front = [encoder.conv_layers, encoder.layer_norm, encoder.pos_conv]
        front += [m for m in (encoder.post_extract_proj,) if m is not None]
        groups = [front] + [[layer] for layer in encoder.layers]
        (groups[-1] if encoder.layer_norm_first else groups[0]).append(encoder.encoder_layer_norm)
    else:
        groups = [[encoder]]
    return [g for g in groups if any(True for m in g for _ in m.parameters())]


def train_last_layers(encoder: Encoder, n: int) -> int:
    """Freeze every parameter of ``encoder`` but those of its last ``n`` layers; returns the
    number of trainable parameters."""
    groups = layer_groups(encoder)
    if not 1 <= n <= len(groups):
        raise ScpcError(
            f"spin: trainable_layers must be 1..{len(groups)} for this encoder, not {n}"
        )
    for p in encoder.parameters():
        p.requires_grad_(False)
    for group in groups[-n:]:
        for module in group:
            for p in module.parameters():
                p.requires_grad_(True)
    return sum(p.numel() for p in encoder.parameters() if p.requires_grad)
