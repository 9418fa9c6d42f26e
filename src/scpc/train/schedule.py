"""Optimisers and the learning-rate schedule: linear warm-up, then an optional decay."""

from __future__ import annotations

import math

import torch

from scpc.config import Config


def make_optimizer(params, t: Config) -> torch.optim.Optimizer:
    lr, wd = t["learning_rate"], t["weight_decay"]
    if t["optimizer"] == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd)
    if t["optimizer"] == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    return torch.optim.SGD(params, lr=lr, momentum=t["momentum"], weight_decay=wd)


def lr_factor(step: int, t: Config, total_steps: int | None) -> float:
    """Multiplier of the base learning rate for optimiser step ``step`` (counting from 0)."""
    warm = t["warmup_steps"]
    if step < warm:
        return (step + 1) / warm
    decay = t["lr_decay"]
    span = t["decay_steps"] or (total_steps - warm if total_steps else None)
    if decay == "none" or not span:
        return 1.0
    progress = min(1.0, (step - warm) / span)
    final = t["final_lr_ratio"]
    if decay == "linear":
        return 1.0 - (1.0 - final) * progress
    if decay == "cosine":
        return final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * progress))
    return final**progress  # exponential


def set_lr(optimizer: torch.optim.Optimizer, t: Config, step: int, total: int | None) -> float:
    lr = t["learning_rate"] * lr_factor(step, t, total)
    for group in optimizer.param_groups:
        group["lr"] = lr
    return lr
