"""The original systems' model code, where it imports offline: s3prl 0.4.18 (in .venv) carries
the model code of CPC_audio, Mockingjay, TERA and AALBERT. Its modules import torchaudio at
the top, which does not load on this machine; a stand-in that fails on use takes its place
(the model classes never call it)."""

from __future__ import annotations

import importlib
import sys
import types


class _Unusable(types.ModuleType):
    """Any attribute is a function that fails when called (imports succeed, uses do not)."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)

        def unusable(*args, **kwargs):
            raise RuntimeError(f"{self.__name__}.{name} is a stand-in in scpc's tests")

        return unusable


def _torchaudio_importable() -> bool:
    try:
        importlib.import_module("torchaudio")
    except (ImportError, OSError):
        for key in [k for k in sys.modules if k.split(".")[0] == "torchaudio"]:
            del sys.modules[key]
        return False
    return True


def s3prl_module(name: str) -> types.ModuleType:
    """``s3prl.<name>``, importing it with a torchaudio stand-in if torchaudio cannot load (or
    another stand-in, such as the ABX wrapper's, is already there: the submodules s3prl's
    model files import are added to it)."""
    stub = sys.modules.get("torchaudio")
    if stub is None and not _torchaudio_importable():
        stub = sys.modules["torchaudio"] = _Unusable("torchaudio")
        stub.__path__ = []
    if stub is not None and getattr(stub, "__file__", None) is None:  # a stand-in
        for sub in ("compliance", "functional", "transforms"):
            if f"torchaudio.{sub}" not in sys.modules:
                sys.modules[f"torchaudio.{sub}"] = _Unusable(f"torchaudio.{sub}")
            setattr(stub, sub, sys.modules[f"torchaudio.{sub}"])
        if "torchaudio.compliance.kaldi" not in sys.modules:
            sys.modules["torchaudio.compliance.kaldi"] = _Unusable("torchaudio.compliance.kaldi")
        sys.modules["torchaudio.compliance"].kaldi = sys.modules["torchaudio.compliance.kaldi"]
    return importlib.import_module(f"s3prl.{name}")


def fairseq_hidden_states(model, wav):
    """The hidden states s3prl's hubert / wav2vec2 / wavlm experts hook, for one utterance run
    through a fairseq-style model: each encoder layer's input, then the encoder's output."""
    import torch

    states, hooks = [], []
    for layer in model.encoder.layers:
        hooks.append(
            layer.register_forward_hook(lambda m, i, o: states.append(i[0].transpose(0, 1)))
        )
    hooks.append(model.encoder.register_forward_hook(lambda m, i, o: states.append(o[0])))
    with torch.no_grad():
        model.extract_features(wav[None], padding_mask=None, mask=False)
    for h in hooks:
        h.remove()
    return [s[0] for s in states]


def fairseq_differences(out, model, wavs) -> list[float]:
    """Max abs difference per hidden state between scpc's ``out`` on a padded batch of
    ``wavs`` and a fairseq-style model run on each utterance alone, over the real frames."""
    worst = [0.0] * len(out.hidden_states)
    for n, wav in enumerate(wavs):
        theirs = fairseq_hidden_states(model, wav)
        frames = int(out.lens[n])
        # fairseq pads the layers' input to an even length (required_seq_len_multiple 2, a
        # masked key): the encoder's output has the frames
        assert len(theirs) == len(out.hidden_states) and frames == theirs[-1].shape[0]
        for i, (mine, t) in enumerate(zip(out.hidden_states, theirs)):
            worst[i] = max(worst[i], float((mine[n, :frames] - t[:frames]).abs().max()))
    return worst


def run_padded(ours, wavs, channel_dim=False):
    """``ours`` (an encoder, or with ``channel_dim`` a bare one taking (N, S, 1)) on the
    zero-padded batch of ``wavs``, without gradients."""
    import torch

    batch = torch.nn.utils.rnn.pad_sequence(wavs, batch_first=True)
    if channel_dim:
        batch = batch.unsqueeze(-1)
    with torch.no_grad():
        return ours(batch, torch.tensor([len(w) for w in wavs]))


# the small fairseq-layout wav2vec 2.0 / HuBERT / WavLM models of the equivalence tests
CONV = [[24, 10, 5], [24, 3, 2], [24, 3, 2], [24, 2, 2]]
TOLERANCE = 1e-4
SMALL = {  # fairseq's config keys of the small test models
    "encoder_layers": 2,
    "encoder_embed_dim": 32,
    "encoder_ffn_embed_dim": 64,
    "encoder_attention_heads": 4,
    "conv_feature_layers": " + ".join(f"[({c}, {k}, {s})]" for c, k, s in CONV),
    "conv_pos": 16,
    "conv_pos_groups": 4,
}
