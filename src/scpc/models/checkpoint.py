"""Self-describing inference checkpoints (``best.ckpt``).

One file holds everything extraction needs: the encoder as JSON plus its weights, the
front-end config (audio to features), the total downsampling factor (audio samples per output
frame) and provenance (the frozen model.yaml, version, git commit). Loading needs only
``scpc``: no recipe files, no training code, no absolute paths. Only plain types and tensors
are stored, so ``torch.load(weights_only=True)`` reads it.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

import torch
from torch import nn

from scpc.errors import ScpcError
from scpc.io import save_torch
from scpc.models.encoders import Encoder, EncoderOutput, encoder_from_json

FORMAT = "scpc-inference-1"


def weights_digest(state: dict[str, torch.Tensor]) -> str:
    """sha256 over every tensor's name, dtype, shape and bytes, in name order: what
    ``scpc-info`` prints and every load verifies (a best.ckpt edited or damaged in a way that
    still unpickles is refused)."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def save_inference_checkpoint(
    path: str | os.PathLike,
    encoder: Encoder,
    frontend_config: dict[str, Any],
    provenance: dict[str, Any] | None = None,
) -> None:
    from scpc.frontend import frontend_from_config

    frontend = frontend_from_config(frontend_config)
    if frontend.feat_size != encoder.input_size:
        raise ScpcError(
            f"front-end gives {frontend.feat_size} features but the encoder takes {encoder.input_size}"
        )
    state = {k: v.detach().cpu() for k, v in encoder.state_dict().items()}
    payload = {
        "format": FORMAT,
        "encoder": encoder.to_json(),
        "state_dict": state,
        "weights_sha256": weights_digest(state),
        "frontend": frontend_config,
        "downsampling_factor": frontend.frame_shift * encoder.downsampling_factor,
        "provenance": provenance or {},
    }
    save_torch(payload, path)


class InferenceModel(nn.Module):
    """Front-end then encoder: audio (N, S) in [-1, 1] with lengths to representations."""

    def __init__(
        self, frontend: nn.Module, encoder: Encoder, provenance: dict[str, Any] | None = None
    ) -> None:
        super().__init__()
        self.frontend, self.encoder = frontend, encoder
        self.provenance = provenance or {}
        self.weights_sha256: str | None = None  # the stored checksum, verified on load

    @property
    def downsampling_factor(self) -> int:
        return self.frontend.frame_shift * self.encoder.downsampling_factor

    @property
    def output_size(self) -> int:
        return self.encoder.output_size

    def forward(self, wav: torch.Tensor, lens: torch.Tensor) -> EncoderOutput:
        feats, feat_lens = self.frontend(wav, lens)
        keep = feat_lens > 0
        if bool(keep.all()):
            return self.encoder(feats, feat_lens)
        # Inputs too short for one front-end frame (a filter bank needs 201 samples) have no
        # frames; recurrent and attention encoders cannot take empty sequences, so only the
        # others go through and the short ones get zero frames.
        idx = keep.nonzero().flatten()
        if len(idx):
            sub = self.encoder(feats[idx], feat_lens[idx])
        else:  # one frame of silence, only for the output shapes
            sub = self.encoder(feats.new_zeros(1, 1, feats.shape[-1]), feat_lens.new_ones(1))
            sub = EncoderOutput(
                sub.output[:, :0], sub.lens * 0, tuple(h[:, :0] for h in sub.hidden_states)
            )

        def scatter(x: torch.Tensor) -> torch.Tensor:
            full = x.new_zeros(len(wav), *x.shape[1:])
            full[idx] = x
            return full

        return EncoderOutput(
            scatter(sub.output), scatter(sub.lens), tuple(scatter(h) for h in sub.hidden_states)
        )


def read_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """The stored payload of a best.ckpt, checked to be one."""
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise ScpcError(f"{path}: no such checkpoint") from None
    except Exception as e:  # torch raises many kinds for truncated or foreign files
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise ScpcError(
            f"{path}: not a readable checkpoint ({type(e).__name__}: {first})"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ScpcError(
            f"{path}: not an scpc inference checkpoint (best.ckpt); last.ckpt holds training "
            "state and is read by scpc-train only"
        )
    return payload


def read_downsampling_factor(path: str | os.PathLike) -> int:
    """Audio samples per output frame of a best.ckpt, without building its model."""
    return int(read_checkpoint(path)["downsampling_factor"])


def load_inference_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device = "cpu"
) -> InferenceModel:
    from scpc.frontend import frontend_from_config

    payload = read_checkpoint(path, map_location)
    try:
        state = payload["state_dict"]
        want = payload.get("weights_sha256")  # absent in checkpoints of older scpc
        if want is not None and weights_digest(state) != want:
            raise ScpcError(
                f"{path}: its weights do not match their checksum (damaged or edited after "
                "saving); restore it from a copy"
            )
        encoder = encoder_from_json(payload["encoder"])
        try:
            encoder.load_state_dict(state)
        except RuntimeError as e:
            why = " ".join(str(e).split())
            raise ScpcError(f"{path}: weights do not fit the stored architecture: {why}") from None
        model = InferenceModel(
            frontend_from_config(payload["frontend"]), encoder, payload.get("provenance", {})
        )
    except ScpcError:
        raise
    except Exception as e:  # noqa: BLE001 - a damaged payload that still unpickles
        why = " ".join(str(e).split())[:200]
        raise ScpcError(f"{path}: a damaged checkpoint ({type(e).__name__}: {why})") from None
    model.weights_sha256 = want
    if model.downsampling_factor != payload["downsampling_factor"]:
        raise ScpcError(
            f"{path}: stored downsampling factor {payload['downsampling_factor']} but the model "
            f"has {model.downsampling_factor}"
        )
    return model.eval()


def checkpoint_id(path: str | os.PathLike) -> str:
    """sha256 of a checkpoint file: ties a PCA to the exact model it was fit on."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while block := f.read(1 << 20):
                h.update(block)
    except FileNotFoundError:
        raise ScpcError(f"{path}: no such checkpoint") from None
    return h.hexdigest()
