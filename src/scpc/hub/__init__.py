"""scpc checkpoints as s3prl upstreams, without a fork of s3prl.

``UpstreamExpert(ckpt)`` follows s3prl's upstream contract: ``forward(wavs)`` takes a list of
unpadded 1-D float waveforms at 16 kHz (on the module's device) and returns
``{"hidden_states": [one (B, T, C) tensor per layer], "last_hidden_state": the last of
them, "hidden_state_<i>": the i-th}``; ``get_downsample_rates(key)`` is the checkpoint's exact
downsampling factor ``d`` (160 = 10 ms frames) for every key.

Frames. An utterance of ``S`` samples is zero-padded to the model's minimum length ``m``
(the shortest input that gives a frame; 159 samples for CPC's conv encoder, 201 for 25 ms
filter banks) and gets ``n = (max(S, m) + frame_offset) // d`` frames, the checkpoint's own
frame rule (``scpc-info`` prints ``frame_offset`` and ``min_samples``). ``T`` is the ``n`` of
the batch's longest utterance; frames past an utterance's own ``n`` are zero. So ``T`` is
never 0 and differs from s3prl's ``round(max_len / d)`` by at most 1 frame for every
shipped front-end and encoder (offset 1 or 80 with ``d = 160``), well inside s3prl's
tolerance of 5. An utterance's frames do not depend on the others in its batch.

Layers. s3prl's weighted sum needs layers of one size, so ``hidden_states`` holds the
checkpoint's exposed layers (``scpc-info``'s ``layer_sizes``) of the final layer's size:
for cpc.deft (conv 512, GRU 256) that is the GRU alone. ``model_config`` (s3prl's ``-g``), a
YAML or JSON file, may choose otherwise::

    layers: [0]          # indices into the checkpoint's layers, all of one size
    pca: pca_32.pt       # or: an scpc-pca file (relative to this file); hidden_states is
                         # then its one layer, projected as (x - mean) V

The same two keys may be passed as keyword arguments (s3prl's ``extra_conf``). Gradients
flow when enabled (fine-tuning with ``-f``); s3prl itself runs frozen upstreams under
``no_grad``.

Entries: ``scpc_local(ckpt)``, ``scpc_url(url)`` (downloaded once into
``$SCPC_HUB_CACHE`` or ``<torch hub dir>/scpc``) and ``scpc_custom`` (either).
``register()`` adds them to ``s3prl.hub``, where s3prl's runner and ``S3PRLUpstream`` look
names up; ``python -m scpc.hub run_downstream ...`` registers them and runs s3prl's
``run_downstream.py``.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import re
import shutil
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from scpc.errors import ScpcError
from scpc.io import atomic_path

__all__ = [
    "UpstreamExpert",
    "download",
    "register",
    "scpc_custom",
    "scpc_local",
    "scpc_url",
]

CONFIG_KEYS = ("layers", "pca")
URL_SCHEMES = ("http://", "https://", "ftp://", "file://")


class UpstreamExpert(nn.Module):
    """An scpc ``best.ckpt`` as an s3prl upstream (see the module docstring)."""

    def __init__(
        self,
        ckpt: str,
        model_config: str | None = None,
        refresh: bool = False,  # s3prl passes it to every upstream; a local file has no cache
        **kwargs: Any,
    ) -> None:
        super().__init__()
        from scpc.models.checkpoint import load_inference_checkpoint
        from scpc.models.inference import min_batch_samples, shortest_input

        options = _options(model_config, kwargs)
        self.model = load_inference_checkpoint(ckpt)
        self.min_width = min_batch_samples(self.model)  # strided convs need a minimum width
        self.min_samples, probe = shortest_input(self.model, self._device(torch.empty(0)))
        sizes = [h.shape[-1] for h in probe.hidden_states]
        self.pca_layer: int | None = None
        if options.get("pca") is not None:
            self.layers = self._attach_pca(options["pca"], ckpt, sizes, probe.output.shape[-1])
        else:
            self.layers = _select_layers(options.get("layers"), sizes)
        self.eval()

    @property
    def downsampling_factor(self) -> int:
        return int(self.model.downsampling_factor)

    def get_downsample_rates(self, key: str = "hidden_states") -> int:
        return self.downsampling_factor

    def forward(self, wavs: list[torch.Tensor]) -> dict[str, Any]:
        if len(wavs) == 0:
            raise ScpcError("UpstreamExpert: no waveforms")
        for w in wavs:
            if w.dim() != 1:
                raise ScpcError(
                    f"UpstreamExpert: waveforms must be 1-D (samples,), got {tuple(w.shape)}"
                )
        device = self._device(wavs[0])
        from scpc.masks import frame_mask
        from scpc.models.inference import PAD_QUANTUM

        lens = [max(len(w), self.min_samples) for w in wavs]
        width = max(-(-max(lens) // PAD_QUANTUM) * PAD_QUANTUM, self.min_width)
        # F.pad rather than writing into a zero tensor: gradients reach the waveforms
        x = torch.stack([F.pad(w.to(device, torch.float32), (0, width - len(w))) for w in wavs])
        out = self.model(x, torch.tensor(lens, device=device))
        frames = int(out.lens.max())
        if self.pca_layer is not None:
            h = out.output if self.pca_layer == -1 else out.hidden_states[self.pca_layer]
            h = ((h[:, :frames].double() - self.pca_mean) @ self.pca_basis).to(h.dtype)
            keep = frame_mask(out.lens, frames)
            states = [h * keep.unsqueeze(-1).to(h.dtype)]  # padding frames stay zero
        else:
            states = [out.hidden_states[i][:, :frames] for i in self.layers]
        result: dict[str, Any] = {"hidden_states": states, "last_hidden_state": states[-1]}
        result.update({f"hidden_state_{i}": h for i, h in enumerate(states)})
        return result

    def _device(self, wav: torch.Tensor) -> torch.device:
        # front-end-only checkpoints have buffers but no parameters; a raw one has neither
        for t in (*self.parameters(), *self.buffers()):
            return t.device
        return wav.device

    def _attach_pca(self, path: str, ckpt: str, sizes: list[int], output_size: int) -> list[int]:
        from scpc.models.checkpoint import checkpoint_id
        from scpc.models.pca import check_compatible, load_pca

        pca = load_pca(path)
        if not -1 <= pca.layer < len(sizes):
            raise ScpcError(f"{path}: fit on layer {pca.layer}, but the model has {len(sizes)}")
        size = output_size if pca.layer == -1 else sizes[pca.layer]
        check_compatible(pca, pca.layer, size, checkpoint_id(ckpt), path)
        self.pca_layer = pca.layer
        self.register_buffer("pca_mean", pca.mean.to(torch.float64))
        self.register_buffer("pca_basis", pca.basis.to(torch.float64))
        return [pca.layer]


def _options(model_config: str | os.PathLike | None, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``layers``/``pca`` from the model_config file, overridden by keyword arguments."""
    unknown = sorted(set(kwargs) - set(CONFIG_KEYS))
    if unknown:
        raise ScpcError(
            f"UpstreamExpert: unknown option {unknown[0]!r} (known: {', '.join(CONFIG_KEYS)})"
        )
    options: dict[str, Any] = {}
    if model_config:
        options = _read_config(Path(model_config))
    options.update({k: v for k, v in kwargs.items() if v is not None})
    if options.get("layers") is not None and options.get("pca") is not None:
        raise ScpcError("UpstreamExpert: give layers or pca, not both (a PCA has its own layer)")
    return options


def _read_config(path: Path) -> dict[str, Any]:
    import yaml

    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ScpcError(f"{path}: no such model_config file") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ScpcError(f"{path}: not a valid YAML/JSON model_config ({first})") from None
    if not isinstance(config, dict):
        raise ScpcError(f"{path}: model_config must be a mapping with keys layers and/or pca")
    for key in config:
        if key not in CONFIG_KEYS:
            raise ScpcError(f"{path}: unknown key {key!r} (known: {', '.join(CONFIG_KEYS)})")
    if config.get("pca") is not None:
        if not isinstance(config["pca"], str):
            raise ScpcError(f"{path}: pca must be a file name, got {config['pca']!r}")
        config["pca"] = str(path.parent / config["pca"])  # relative to the config file
    return config


def _select_layers(layers: Any, sizes: list[int]) -> list[int]:
    if layers is None:  # default: every layer of the final layer's size
        return [i for i, c in enumerate(sizes) if c == sizes[-1]]
    if isinstance(layers, int) and not isinstance(layers, bool):
        layers = [layers]
    if not isinstance(layers, (list, tuple)) or not layers:
        raise ScpcError(f"layers must be a non-empty list of layer indices, got {layers!r}")
    chosen = []
    for i in layers:
        if not isinstance(i, int) or isinstance(i, bool) or not -len(sizes) <= i < len(sizes):
            raise ScpcError(
                f"layers: {i!r} is not a layer of this model (it has {len(sizes)}: "
                f"0 to {len(sizes) - 1}, sizes {sizes})"
            )
        chosen.append(i % len(sizes))
    if len({sizes[i] for i in chosen}) > 1:
        raise ScpcError(
            f"layers {chosen} have sizes {[sizes[i] for i in chosen]}; s3prl's weighted sum "
            "needs layers of one size"
        )
    return chosen


# ---------------------------------------------------------------------------- entries


def scpc_local(
    ckpt: str, model_config: str | None = None, refresh: bool = False, **kwargs: Any
) -> UpstreamExpert:
    """A local best.ckpt (s3prl: ``-u scpc_local -k best.ckpt [-g model_config.yaml]``)."""
    return UpstreamExpert(ckpt, model_config, refresh, **kwargs)


def scpc_url(
    ckpt: str, model_config: str | None = None, refresh: bool = False, **kwargs: Any
) -> UpstreamExpert:
    """A best.ckpt at a URL, downloaded once (``refresh`` downloads it again)."""
    return UpstreamExpert(str(download(ckpt, refresh)), model_config, refresh, **kwargs)


def scpc_custom(
    ckpt: str, model_config: str | None = None, refresh: bool = False, **kwargs: Any
) -> UpstreamExpert:
    """A URL (http, https, ftp, file) or a local path."""
    entry = scpc_url if str(ckpt).startswith(URL_SCHEMES) else scpc_local
    return entry(ckpt, model_config, refresh, **kwargs)


ENTRIES = {"scpc_local": scpc_local, "scpc_url": scpc_url, "scpc_custom": scpc_custom}


def cache_dir() -> Path:
    """``$SCPC_HUB_CACHE``, else ``scpc/`` in torch's hub dir (s3prl's ``--cache_dir``)."""
    return Path(os.environ.get("SCPC_HUB_CACHE") or Path(torch.hub.get_dir()) / "scpc")


def download(url: str, refresh: bool = False) -> Path:
    """The cached copy of ``url``, fetched first if absent (or ``refresh``). The file is
    written under a temporary name and renamed, so concurrent processes (DDP ranks) and
    interrupted downloads never leave a partial checkpoint behind."""
    name = Path(urllib.parse.urlparse(url).path).name
    name = re.sub(r"[^A-Za-z0-9._-]", "_", name) or "model.ckpt"
    path = cache_dir() / f"{hashlib.sha256(url.encode()).hexdigest()[:16]}-{name}"
    if path.is_file() and not refresh:
        return path
    try:
        with urllib.request.urlopen(url, timeout=60) as response, atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                shutil.copyfileobj(response, f, 1 << 20)
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise ScpcError(f"{url}: download failed ({e})") from None
    return path


def import_s3prl(module: str) -> ModuleType:
    """``s3prl.<module>``, or a one-line ScpcError saying why it cannot be imported."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        missing = getattr(e, "name", None) or str(e)
        raise ScpcError(
            f"cannot import {module} ({missing} is missing); install s3prl and its dependencies "
            "(pip install s3prl)"
        ) from None
    except OSError as e:  # e.g. a torchaudio built for another torch
        raise ScpcError(f"cannot import {module}: {str(e).splitlines()[0]}") from None


def register(s3prl_hub_module: ModuleType | Any = None) -> ModuleType | Any:
    """Add scpc_local, scpc_url and scpc_custom to ``s3prl.hub`` (or the module given), where
    s3prl's runner (``-u NAME``) and ``s3prl.nn.S3PRLUpstream(NAME)`` look names up."""
    hub = s3prl_hub_module if s3prl_hub_module is not None else import_s3prl("s3prl.hub")
    for name, entry in ENTRIES.items():
        setattr(hub, name, entry)
    return hub
