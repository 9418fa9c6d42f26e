"""Fitting a PCA of a model's representations on audio (``scpc-pca``, run.sh stage 4): the
model runs over the utterances as extraction runs it, a seeded sample of each utterance's
frames is merged into exact moments, and the projection is tied to the checkpoint's sha256.
"""

from __future__ import annotations

from collections.abc import Sequence

from scpc.errors import ScpcError
from scpc.extract import Job, ReadOptions, Utterance, prepare, representations
from scpc.models.checkpoint import checkpoint_id
from scpc.models.inference import ALL, OUTPUT, layer_sizes
from scpc.models.pca import Moments, Pca, from_moments, sample_frames
from scpc.progress import progress_bar


def fit_on_audio(
    checkpoint: str,
    utts: Sequence[Utterance],
    dim: int,
    layer: str = "-1",
    frames_per_utt: int = 100,
    seed: int = 0,
    device: str = "auto",
    batch_samples: int = 100 * 16000,  # padded audio samples per batch
    read_opts: ReadOptions | None = None,
) -> Pca:
    """Run the model over the audio, keep up to ``frames_per_utt`` random real frames of each
    utterance (all of them if 0) and fit an exact PCA to them."""
    model, layer_, _, dev = prepare(Job(checkpoint, "", layer, device=device))
    if layer_ == ALL:
        raise ScpcError("PCA is fit on one layer; --layer all is not allowed")
    size = model.output_size if layer_ == OUTPUT else layer_sizes(model, dev)[int(layer_)]
    if not 1 <= dim <= size:
        raise ScpcError(
            f"PCA: dimension {dim} must lie in [1, {size}] (the size of layer {layer_})"
        )
    moments = Moments(size)
    reps = representations(
        model,
        utts=utts,
        layer=layer_,
        batch_samples=batch_samples,
        device=dev,
        read_opts=read_opts or ReadOptions(),
    )
    bar = progress_bar(reps, total=len(utts), unit="utt", desc="pca")
    for utt, rep, _ in bar:
        moments.add(
            rep if frames_per_utt <= 0 else sample_frames(rep, utt.uttid, frames_per_utt, seed)
        )
    mean, basis, variances, total = from_moments(moments, dim)
    return Pca(
        mean,
        basis=basis,
        explained_variance=variances,
        layer=int(layer_),
        input_size=size,
        checkpoint=checkpoint_id(checkpoint),
        total_variance=total,
    )
