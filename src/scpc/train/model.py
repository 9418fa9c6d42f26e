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
    UtteranceCmvnEncoder,
)
from scpc.models.spiral import SpiralEncoder
from scpc.objectives.bestrq import BestRqLoss
from scpc.objectives.cpc import CpcLoss
from scpc.objectives.reconstruction import ReconstructionLoss
from scpc.objectives.spiral import NoiseBank, SpiralLoss


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
            c["activation"],
            c["share_layers"],
        )
    if kind == "spiral":
        c = config["spiral"]
        return SpiralEncoder(
            input_size,
            c["blocks"],
            c["pos_conv_kernel"],
            c["pos_conv_groups"],
            dropout,
            c["layerdrop"],
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
        # per-utterance CMVN in front of everything (TERA's input): part of the encoder
        self.input_norm = (
            UtteranceCmvnEncoder(feat_size) if config["input_norm"] == "utterance" else None
        )
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
        elif self.loss_type == "spiral":
            c = t["spiral_loss"]
            self.objective = SpiralLoss(
                EncoderSequence(self.latent, self.context),
                feat_size,
                c["projection_size"],
                c["predictor_layers"],
                5,
                c["temperature"],
                c["negatives"],
                c["mask_prob"],
                c["mask_length"],
                c["channel_mask_prob"],
                c["channel_mask_length"],
                c["max_shift"],
                c["max_shift_ratio"],
                c["ema_start"],
                c["ema_end"],
                c["teacher_train_mode"],
                t["seed"],
            )
            self.noise = NoiseBank(c["noise_dir"], config["frontend"]) if c["noise_dir"] else None
            self.noise_ratio, self.snr_range = c["noise_ratio"], c["snr_range"]
            # two output frames (one to predict, one negative) and room for the shift
            self.min_frames = 2
        elif self.loss_type == "reconstruction":
            if self.latent.downsampling_factor != 1:
                raise ScpcError(
                    "reconstruction predicts every input frame: the latent encoder must keep the "
                    f"frame rate ({config['latent_type']} downsamples)"
                )
            c = t["reconstruction_loss"]
            self.objective = ReconstructionLoss(
                feat_size,
                self.context.output_size,
                c["time_mask_proportion"],
                c["time_mask_consecutive"],
                c["time_mask_policy"],
                c["freq_mask_max"],
                c["noise_prob"],
                c["noise_std"],
                c["loss"],
            )
            self.min_frames = c["time_mask_consecutive"] + 1
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
        self.min_input_frames = (
            self.min_frames * self.latent.downsampling_factor * self.context.downsampling_factor
        )

    def encoder(self) -> EncoderSequence:
        if self.input_norm is not None:
            return EncoderSequence(self.input_norm, self.latent, self.context)
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
        if self.loss_type == "spiral":
            return self._spiral(feats, lens, generator)
        if self.input_norm is not None:
            feats = self.input_norm(feats, lens).output
        if self.loss_type == "reconstruction":
            altered, cells = self.objective.alter(feats, lens, generator)
            z, zlens, _ = self.latent(altered, lens)
            c, _, _ = self.context(z, zlens)
            out = self.objective(feats, c, cells)
            return {"loss": out.loss, "accuracy": out.accuracy, "masked": out.altered_fraction}
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

    def _spiral(self, feats, lens, generator) -> dict[str, Any]:
        clean = self.input_norm(feats, lens).output if self.input_norm is not None else feats
        noisy = clean
        if self.noise is not None and self.training:  # the student alone hears the noise
            noisy = self.noise.mix(feats, lens, self.noise_ratio, self.snr_range, generator)
            if self.input_norm is not None:
                noisy = self.input_norm(noisy, lens).output
        student_in = self.objective.student_input(noisy, lens, generator)
        z, zlens, _ = self.latent(student_in, lens)
        c, clens, _ = self.context(z, zlens)
        out = self.objective(c, clens, clean, lens, generator)
        return {"loss": out.loss, "accuracy": out.accuracy}

    def after_step(self, step: int, total: int | None) -> None:
        """Called by the trainer after every optimiser step (SPIRAL's teacher update)."""
        if self.loss_type == "spiral":
            student = EncoderSequence(self.latent, self.context)
            self.objective.update_teacher(student, step, total or 0)
