"""Build the encoders and the objective of a model config; the module that is trained."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from scpc.config import Config
from scpc.errors import ScpcError
from scpc.frontend.base import WAVE_NORM_EPS
from scpc.masks import frame_mask, utterance_cmvn
from scpc.models.checkpoint import InferenceModel, load_inference_checkpoint
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
from scpc.models.wav2vec2 import Wav2Vec2Encoder
from scpc.objectives.bestrq import BestRqLoss
from scpc.objectives.cpc import CpcLoss
from scpc.objectives.reconstruction import ReconstructionLoss
from scpc.objectives.spin import SpinLoss, pnmi
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
            blocks=c["blocks"],
            pos_conv_kernel=c["pos_conv_kernel"],
            pos_conv_groups=c["pos_conv_groups"],
            dropout=dropout,
            layerdrop=c["layerdrop"],
        )
    if kind == "wav2vec2":  # its config keys are the encoder's arguments
        return Wav2Vec2Encoder(
            input_size, **config["wav2vec2"], dropout=dropout, attention_dropout=dropout
        )
    if kind == "cconv":
        c = config["cconv"]
        return CausalConvEncoder(
            input_size,
            output_size=c["output_size"],
            num_layers=c["num_layers"],
            kernel_size=c["kernel_size"],
            nonlin=c["nonlin_type"],
            dropout=dropout,
        )
    return IdentityEncoder(input_size)


def checkpoint_upstream(config: Config, path: str) -> InferenceModel:
    """A best.ckpt to continue, checked to take this config's features."""
    upstream = load_inference_checkpoint(path)
    fe = config.get("frontend")
    if fe is not None and upstream.frontend.config != fe:
        raise ScpcError(
            f"{path}: its front-end differs from this config's ({config['feat_type']}); make "
            "feat_type name its front-end (scpc-import writes it as frontend.json)"
        )
    return upstream


def continued_encoder(config: Config, path: str, feat_size: int) -> tuple[Encoder, Encoder]:
    """(latent, context) of a checkpoint's encoder: a sequence's first member and the rest, or
    an identity and the whole encoder."""
    encoder = checkpoint_upstream(config, path).encoder.train()
    if encoder.input_size != feat_size:
        raise ScpcError(f"{path}: its encoder takes {encoder.input_size} features, not {feat_size}")
    if isinstance(encoder, EncoderSequence) and len(encoder.encoders) > 1:
        first, *rest = encoder.encoders
        return first, rest[0] if len(rest) == 1 else EncoderSequence(*rest)
    return IdentityEncoder(feat_size), encoder


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
        self.loss_type = t["loss_type"]
        if self.loss_type != "spin" and t["init_checkpoint"]:
            self.input_norm = None  # the checkpoint's encoder holds any normalisation
            self.latent, self.context = continued_encoder(config, t["init_checkpoint"], feat_size)
        elif self.loss_type != "spin":  # Spin's encoder is the checkpoint it continues
            self.latent = build_latent(config, feat_size)
            self.context = build_context(config, self.latent.output_size)
        if self.loss_type == "cpc":
            c = t["cpc_loss"]
            self.objective: nn.Module = CpcLoss(
                self.latent.output_size,
                context_size=self.context.output_size,
                prediction_steps=c["prediction_steps"],
                gutted_steps=c["gutted_steps"],
                negative_samples=c["negative_samples"],
                negatives=c["negatives"],
                offset=c["offset"],
                predictor=c["prediction_type"],
                predictor_width=c["prediction_width"],
                prediction_dropout=c["prediction_dropout_prob"],
                averaging_penalty=c["averaging_penalty"],
                num_speakers=num_speakers if c["speaker_embedding"] else None,
            )
            self.min_frames = c["offset"] + c["prediction_steps"] + 1
        elif self.loss_type == "spin":
            self._init_spin(config)
        elif self.loss_type == "spiral":
            c = t["spiral_loss"]
            self.objective = SpiralLoss(
                EncoderSequence(self.latent, self.context),
                feat_size=feat_size,
                projection_size=c["projection_size"],
                predictor_layers=c["predictor_layers"],
                predictor_kernel=5,
                temperature=c["temperature"],
                negatives=c["negatives"],
                mask_prob=c["mask_prob"],
                mask_length=c["mask_length"],
                channel_mask_prob=c["channel_mask_prob"],
                channel_mask_length=c["channel_mask_length"],
                max_shift=c["max_shift"],
                max_shift_ratio=c["max_shift_ratio"],
                ema_start=c["ema_start"],
                ema_end=c["ema_end"],
                teacher_train_mode=c["teacher_train_mode"],
                mask_seed=t["seed"],
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
                context_size=self.context.output_size,
                time_mask_proportion=c["time_mask_proportion"],
                time_mask_consecutive=c["time_mask_consecutive"],
                time_mask_policy=c["time_mask_policy"],
                freq_mask_max=c["freq_mask_max"],
                noise_prob=c["noise_prob"],
                noise_std=c["noise_std"],
                loss=c["loss"],
            )
            self.min_frames = c["time_mask_consecutive"] + 1
        else:
            c = t["best_rq_loss"]
            self.objective = BestRqLoss(
                feat_size,
                context_size=self.context.output_size,
                # targets at the output's frame rate (a wav2vec2 context downsamples too)
                downsampling_factor=self.latent.downsampling_factor
                * self.context.downsampling_factor,
                codebook_size=c["codebook_size"],
                codebook_dim=c["codebook_dim"],
                mask_prob=c["mask_prob"],
                mask_width=c["mask_width"],
                noise_std=c["noise_std"],
                seed=c["quantizer_seed"],
                predictor=c["prediction_type"],
            )
            self.min_frames = 1
        # the minimum length in front-end frames, so that every utterance has a loss term
        self.min_input_frames = (
            self.min_frames * self.latent.downsampling_factor * self.context.downsampling_factor
        )

    def encoder(self) -> EncoderSequence:
        if self.loss_type == "spin":
            return self.latent  # the continued upstream, whole
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
        alis: list[torch.Tensor] | None = None,
    ) -> dict[str, Any]:
        """Loss and diagnostics of a padded batch of features (N, T, F)."""
        if self.loss_type == "spin":
            return self._spin(feats, lens, utt_seeds, alis)
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
        """Called by the trainer after every optimiser step (SPIRAL's teacher update, Spin's
        codebook normalisation)."""
        if self.loss_type == "spin":
            self.objective.normalize_codebook()
        if self.loss_type == "spiral":
            student = EncoderSequence(self.latent, self.context)
            self.objective.update_teacher(student, step, total or 0)

    # ------------------------------------------------------------------ Spin
    def _init_spin(self, config: Config) -> None:
        from scpc.models.freeze import train_last_layers

        c = config["training"]["spin_loss"]
        if not c["init_checkpoint"]:
            raise ScpcError(
                "spin continues a pre-trained model: set training.spin_loss.init_checkpoint"
            )
        upstream = checkpoint_upstream(config, c["init_checkpoint"])
        if upstream.frontend.feat_size != 1:
            raise ScpcError(
                f"{c['init_checkpoint']}: spin perturbs waveforms; it needs an upstream with a "
                "raw (waveform) front-end"
            )
        self.normalize_wave = bool(getattr(upstream.frontend, "normalize", False))
        self.normalize_eps = float(getattr(upstream.frontend, "normalize_eps", WAVE_NORM_EPS))
        self.latent = upstream.encoder
        for module in self.latent.modules():  # Spin trains without layer drop
            if isinstance(module, Wav2Vec2Encoder):
                module.layerdrop = 0.0
        self.context = IdentityEncoder(self.latent.output_size)
        train_last_layers(self.latent, c["trainable_layers"])  # the others are frozen
        self.objective = SpinLoss(
            self.latent.output_size,
            codebook_size=c["codebook_size"],
            projection_size=c["projection_size"],
            temperature=c["temperature"],
            sinkhorn_eps=c["sinkhorn_eps"],
            sinkhorn_iters=c["sinkhorn_iters"],
        )
        self.perturb_args = (
            c["formant_ratio_max"],
            c["pitch_ratio_max"],
            c["eq_bands"],
            c["eq_gain_db"],
        )
        self.min_frames = 1
        self.pnmi_counts: dict[tuple[int, int], int] = {}

    def _perturbed(self, feats, lens, utt_seeds) -> torch.Tensor:
        """Speaker-perturbed copies of (N, T, 1) waveforms, seeded per chunk."""
        import numpy as np

        from scpc.objectives.speaker_perturb import perturb_speaker

        out = torch.zeros_like(feats)
        wavs = feats[..., 0].detach().float().cpu().numpy()
        for i, n in enumerate(lens.tolist()):
            x = wavs[i, :n]
            peak = float(np.abs(x).max()) or 1.0
            seed = int(utt_seeds[i]) if utt_seeds is not None else i
            y = perturb_speaker(x / peak, np.random.default_rng(seed), *self.perturb_args)
            if self.normalize_wave:  # the front-end's per-utterance standardisation again
                y = utterance_cmvn(torch.from_numpy(y)[None, :, None], eps=self.normalize_eps)
                y = y[0, :, 0]
                y = y.numpy()
            else:
                y = y * peak
            out[i, :n, 0] = torch.from_numpy(np.asarray(y, dtype=np.float32)).to(feats.device)
        return out

    def _spin(self, feats, lens, utt_seeds, alis) -> dict[str, Any]:
        a = self.latent(feats, lens)
        b = self.latent(self._perturbed(feats, lens, utt_seeds), lens)
        keep = frame_mask(a.lens, a.output.shape[1])
        out = self.objective(a.output[keep], b.output[keep])
        if alis is not None and not self.training:
            self._count_pnmi(out.codes.cpu(), a.lens.cpu(), alis)
        return {"loss": out.loss, "accuracy": out.accuracy}

    def _count_pnmi(self, codes: torch.Tensor, lens: torch.Tensor, alis) -> None:
        d = self.latent.downsampling_factor
        at = 0
        for n, ali in zip(lens.tolist(), alis):
            idx = (torch.arange(n) * d + d // 2).clamp(max=len(ali) - 1)
            for ph, code in zip(ali[idx].tolist(), codes[at : at + n].tolist()):
                self.pnmi_counts[(ph, code)] = self.pnmi_counts.get((ph, code), 0) + 1
            at += n

    def validation_report(self) -> str:
        """Extra validation figures for the log (Spin: PNMI of the codes against the
        validation set's phone alignments), reset for the next validation."""
        if self.loss_type != "spin" or not self.pnmi_counts:
            return ""
        phones = sorted({p for p, _ in self.pnmi_counts})
        codes = sorted({c for _, c in self.pnmi_counts})
        table = torch.zeros(len(phones), len(codes))
        pi, ci = {p: i for i, p in enumerate(phones)}, {c: i for i, c in enumerate(codes)}
        for (p, c), k in self.pnmi_counts.items():
            table[pi[p], ci[c]] = k
        self.pnmi_counts = {}
        return f" PNMI {pnmi(table):.4f}"
