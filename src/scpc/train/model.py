"""Build the encoders and the objective of a model config; the module that is trained."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from scpc.config import Config
from scpc.errors import ScpcError
from scpc.models.encoders import (
    CausalConvEncoder,
    CausalSelfAttentionEncoder,
    ConvEncoder,
    Encoder,
    EncoderSequence,
    FeedForwardEncoder,
    IdentityEncoder,
    RecurrentEncoder,
    SelfAttentionEncoder,
)
from scpc.objectives.bestrq import BestRqLoss
from scpc.objectives.cpc import CpcLoss


def build_latent(config: Config, input_size: int) -> Encoder:
    kind, dropout = config["latent_type"], config["training"]["dropout_prob"]
    if kind == "conv":
        c = config["conv"]
        return ConvEncoder(input_size, c["output_size"], c["norm_type"], dropout)
    if kind == "ff":
        c = config["ff"]
        return FeedForwardEncoder(
            input_size, c["output_size"], c["nonlin_type"], c["bias"], dropout
        )
    return IdentityEncoder(input_size)


def build_context(config: Config, input_size: int) -> Encoder:
    kind, dropout = config["context_type"], config["training"]["dropout_prob"]
    if kind == "recur":
        c = config["recur"]
        return RecurrentEncoder(
            input_size, c["output_size"], c["num_layers"], c["recurrent_type"], dropout
        )
    if kind in ("csa", "sa"):
        c = config[kind]
        cls = CausalSelfAttentionEncoder if kind == "csa" else SelfAttentionEncoder
        if input_size % c["num_heads"]:
            raise ScpcError(
                f"{kind}: {c['num_heads']} heads do not divide the {input_size} input channels"
            )
        return cls(
            input_size,
            c["num_layers"],
            c["num_heads"],
            c["dim_feedforward"],
            c["max_width"],
            c["position"],
            dropout,
        )
    if kind == "cconv":
        c = config["cconv"]
        return CausalConvEncoder(
            input_size,
            c["output_size"],
            c["num_layers"],
            c["kernel_size"],
            c["nonlin_type"],
            dropout,
        )
    return IdentityEncoder(input_size)


class PretrainModel(nn.Module):
    """Latent encoder, context encoder and the objective's own parameters (predictors,
    heads); ``encoder()`` is what inference keeps."""

    def __init__(self, config: Config, feat_size: int, num_speakers: int = 0) -> None:
        super().__init__()
        t = config["training"]
        self.latent = build_latent(config, feat_size)
        self.context = build_context(config, self.latent.output_size)
        self.loss_type = t["loss_type"]
        if self.loss_type == "cpc":
            c = t["cpc_loss"]
            self.objective: nn.Module = CpcLoss(
                self.latent.output_size,
                self.context.output_size,
                c["prediction_steps"],
                c["gutted_steps"],
                c["negative_samples"],
                c["negatives"],
                c["offset"],
                c["prediction_type"],
                c["prediction_width"],
                c["prediction_dropout_prob"],
                c["averaging_penalty"],
                num_speakers if c["speaker_embedding"] else None,
            )
            self.min_frames = c["offset"] + c["prediction_steps"] + 1
        else:
            c = t["best_rq_loss"]
            self.objective = BestRqLoss(
                feat_size,
                self.context.output_size,
                self.latent.downsampling_factor,
                c["codebook_size"],
                c["codebook_dim"],
                c["mask_prob"],
                c["mask_width"],
                c["noise_std"],
                c["quantizer_seed"],
                c["prediction_type"],
            )
            self.min_frames = 1
        # the minimum length in front-end frames, so that every utterance has a loss term
        self.min_input_frames = self.min_frames * self.latent.downsampling_factor

    def encoder(self) -> EncoderSequence:
        return EncoderSequence(self.latent, self.context)

    def forward(
        self,
        feats: torch.Tensor,
        lens: torch.Tensor,
        speakers: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        utt_seeds: torch.Tensor | None = None,
    ) -> dict[str, Any]:
        """Loss and diagnostics of a padded batch of features (N, T, F)."""
        if self.loss_type == "cpc":
            z, zlens, _ = self.latent(feats, lens)
            c, _, _ = self.context(z, zlens)
            out = self.objective(z, c, zlens, speakers, generator, utt_seeds)
            return {"loss": out.loss, "accuracy": out.accuracy}
        masked, mask = self.objective.mask(feats, lens, generator)
        z, zlens, _ = self.latent(masked, lens)
        c, clens, _ = self.context(z, zlens)
        out = self.objective(feats, c, mask, clens)
        return {"loss": out.loss, "accuracy": out.accuracy, "masked": out.masked_fraction}
