"""Checking front-end configs without torch, so that tools answer at once.

The keys are pydrobert-speech 0.3.0's (``ShortTimeFourierTransformFrameComputer`` and its
``fbank``/``tri`` banks); the subset scpc supports is checked here and anything else is
refused with a one-line message naming the key.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from scpc.errors import ScpcError
from scpc.frontend import filters

SAMPLE_RATE = 16000  # audio is 16 kHz everywhere in scpc

STFT_KEYS = {
    "name",
    "bank",
    "frame_length_ms",
    "frame_shift_ms",
    "frame_style",
    "include_energy",
    "pad_to_nearest_power_of_two",
    "window_function",
    "use_log",
    "use_power",
    "kaldi_shift",
    "input_scale",
}
BANK_KEYS = {
    "fbank": {"name", "num_filts", "high_hz", "low_hz", "sampling_rate", "analytic"},
    "tri": {
        "name",
        "scaling_function",
        "num_filts",
        "high_hz",
        "low_hz",
        "sampling_rate",
        "analytic",
    },
}
BANK_ALIASES = {"fbank": "fbank", "tri": "tri", "triangular": "tri"}


def _fail(msg: str) -> ScpcError:
    return ScpcError(f"front-end config: {msg}")


def _name(value: Any, where: str) -> str:
    """An alias given as a string or as {"name": ...} (pydrobert also takes "alias")."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        name = value.get("name", value.get("alias"))
        if isinstance(name, str):
            return name
    raise _fail(f'{where} must be a name or an object with a "name", got {value!r}')


def _check_keys(cfg: dict[str, Any], allowed: set[str], where: str) -> None:
    for key in cfg:
        if key not in allowed:
            raise _fail(f"unknown key {key!r} in {where} (known: {', '.join(sorted(allowed))})")


def _get(cfg: dict[str, Any], key: str, default: Any, kind: type | tuple[type, ...]) -> Any:
    value = cfg.get(key, default)
    # bool is an int in Python; numbers must not be true/false and flags must be true/false
    ok = isinstance(value, kind) and (kind is bool or not isinstance(value, bool))
    if not ok and not (value is None and default is None):
        what = {bool: "true or false", int: "an integer", str: "a string"}.get(kind, "a number")
        raise _fail(f"{key!r} must be {what}, got {value!r}")
    return value


def _bank(cfg: Any) -> tuple[str, int, float, float]:
    """(kind, num_filts, low_hz, high_hz) of a bank config."""
    if isinstance(cfg, str):
        cfg = {"name": cfg}
    name = _name(cfg, "'bank'")
    if name not in BANK_ALIASES:
        raise _fail(f"unknown bank {name!r} (supported: {', '.join(sorted(BANK_ALIASES))})")
    kind = BANK_ALIASES[name]
    cfg = {("name" if k == "alias" else k): v for k, v in cfg.items()}
    _check_keys(cfg, BANK_KEYS[kind], f"bank {name!r}")
    if kind == "tri" and _name(cfg.get("scaling_function", ""), "'scaling_function'") != "mel":
        raise _fail("only the 'mel' scaling_function is supported for a triangular bank")
    if kind == "tri" and isinstance(cfg["scaling_function"], dict):
        _check_keys(cfg["scaling_function"], {"name", "alias"}, "scaling_function 'mel'")
    num_filts = _get(cfg, "num_filts", 40, int)
    low_hz = _get(cfg, "low_hz", 20.0, (int, float))
    high_hz = _get(cfg, "high_hz", None, (int, float))
    rate = _get(cfg, "sampling_rate", SAMPLE_RATE, (int, float))
    if _get(cfg, "analytic", False, bool):
        raise _fail("analytic banks are not supported ('analytic' must be false)")
    if rate != SAMPLE_RATE:
        raise _fail(f"'sampling_rate' must be {SAMPLE_RATE} (scpc audio is 16 kHz), got {rate}")
    if num_filts < 1:
        raise _fail(f"'num_filts' must be positive, got {num_filts}")
    if high_hz is None:
        high_hz = rate // 2
    if low_hz < 0 or high_hz <= low_hz or high_hz > rate // 2:
        raise _fail(f"invalid frequency range low_hz={low_hz}, high_hz={high_hz}")
    return kind, num_filts, float(low_hz), float(high_hz)


@dataclass(frozen=True)
class StftSettings:
    """What an ``stft`` config means, in samples."""

    bank: str  # "fbank" | "tri"
    num_filts: int
    low_hz: float
    high_hz: float
    window: str
    frame_length: int
    frame_shift: int
    pad_left: int  # samples before frame k's start at k * frame_shift
    dft_size: int
    include_energy: bool
    use_log: bool
    use_power: bool


def stft_settings(config: dict[str, Any]) -> StftSettings:
    _check_keys(config, STFT_KEYS, "the 'stft' front-end")
    if "bank" not in config:
        raise _fail("the 'stft' front-end needs a 'bank'")
    kind, num_filts, low_hz, high_hz = _bank(config["bank"])
    length_ms = _get(config, "frame_length_ms", None, (int, float))
    if length_ms is None:
        raise _fail("'frame_length_ms' is required")
    shift_ms = _get(config, "frame_shift_ms", 10, (int, float))
    style = _get(config, "frame_style", "centered", str)
    include_energy = _get(config, "include_energy", False, bool)
    pow2 = _get(config, "pad_to_nearest_power_of_two", True, bool)
    use_log = _get(config, "use_log", True, bool)
    use_power = _get(config, "use_power", False, bool)
    kaldi_shift = _get(config, "kaldi_shift", False, bool)
    if style not in ("centered", "causal"):
        raise _fail(f"'frame_style' must be 'centered' or 'causal', got {style!r}")
    win = config.get("window_function")
    if win is None:
        if style == "causal":
            raise _fail("a causal 'frame_style' needs an explicit 'window_function'")
        win = "hanning"
    win_name = _name(win, "'window_function'")
    if win_name not in filters.WINDOWS:
        raise _fail(
            f"unknown window_function {win_name!r} (supported: {', '.join(filters.WINDOWS)})"
        )
    if isinstance(win, dict):
        _check_keys(win, {"name", "alias"}, f"window_function {win_name!r}")
    # the same float expressions as pydrobert, so that truncation agrees
    shift = int(0.001 * shift_ms * SAMPLE_RATE)
    length = int(0.001 * length_ms * SAMPLE_RATE)
    if shift < 1 or length < 1:
        raise _fail("'frame_length_ms' and 'frame_shift_ms' must be at least one sample")
    if style == "causal":
        pad_left = 0
    elif kaldi_shift:
        pad_left = length // 2 - shift // 2
    else:
        pad_left = (length + 1) // 2 - 1
    return StftSettings(
        bank=kind,
        num_filts=num_filts,
        low_hz=low_hz,
        high_hz=high_hz,
        window=win_name,
        frame_length=length,
        frame_shift=shift,
        pad_left=pad_left,
        dft_size=int(2 ** math.ceil(math.log2(length))) if pow2 else length,
        include_energy=include_energy,
        use_log=use_log,
        use_power=use_power,
    )


FRONTENDS = ("raw", "stft", "mfcc", "online_mel", "nemo_mel", "kaldi")

NEMO_MEL_DEFAULTS: dict[str, Any] = {  # NeMo's FilterbankFeatures (SPIRAL's fork)
    "n_window_size": 320,
    "n_window_stride": 160,
    "window": "hann",
    "n_fft": None,
    "preemph": 0.97,
    "nfilt": 64,
    "lowfreq": 0,
    "highfreq": None,
    "log": True,
    "log_zero_guard_type": "add",
    "log_zero_guard_value": 2**-24,
    "normalize": "per_feature",
    "mag_power": 2.0,
    "normalize_time_domain": False,
}


def nemo_mel_settings(config: dict[str, Any]) -> dict[str, Any]:
    """The ``nemo_mel`` front-end's settings, defaults filled in."""
    _check_keys(config, {"name", "input_scale", *NEMO_MEL_DEFAULTS}, "the 'nemo_mel' front-end")
    st = {**NEMO_MEL_DEFAULTS, **{k: v for k, v in config.items() if k != "name"}}
    for key in ("n_window_size", "n_window_stride", "nfilt"):
        if _get(st, key, 1, int) < 1:
            raise _fail(f"'{key}' of 'nemo_mel' must be positive")
    if st["n_fft"] is not None and _get(st, "n_fft", 1, int) < st["n_window_size"]:
        raise _fail("'n_fft' of 'nemo_mel' must be at least the window")
    if st["window"] not in ("hann", "hamming", "blackman", "bartlett"):
        raise _fail(f"unknown 'window' {st['window']!r} of 'nemo_mel'")
    if st["normalize"] not in ("per_feature", "all_features", "none"):
        raise _fail(
            f"'normalize' of 'nemo_mel': per_feature, all_features or none, got {st['normalize']!r}"
        )
    if st["log_zero_guard_type"] not in ("add", "clamp"):
        raise _fail("'log_zero_guard_type' of 'nemo_mel' is add or clamp")
    for key in ("log", "normalize_time_domain"):
        _get(st, key, False, bool)
    for key in ("preemph", "lowfreq", "mag_power", "log_zero_guard_value"):
        _get(st, key, 0.0, (int, float))
    high = st["highfreq"] or SAMPLE_RATE / 2
    if not 0 <= st["lowfreq"] < high <= SAMPLE_RATE / 2:
        raise _fail("'nemo_mel' needs 0 <= lowfreq < highfreq <= 8000")
    return st


ONLINE_MEL_DEFAULTS: dict[str, Any] = {  # s3prl's OnlinePreprocessor and get_feat_config
    "feat_type": "mel",
    "log": False,
    "delta": 0,
    "cmvn": False,
    "n_mels": 40,
    "n_freq": 201,
    "win_ms": 25,
    "hop_ms": 10,
    "target_level": -25,
    "eps": 1e-10,
}


def online_mel_settings(config: dict[str, Any]) -> dict[str, Any]:
    """The ``online_mel`` front-end's settings, defaults filled in."""
    _check_keys(config, {"name", "input_scale", *ONLINE_MEL_DEFAULTS}, "the 'online_mel' front-end")
    st = {**ONLINE_MEL_DEFAULTS, **{k: v for k, v in config.items() if k != "name"}}
    if st["feat_type"] not in ("mel", "linear"):
        raise _fail(f"'feat_type' of 'online_mel' must be mel or linear, got {st['feat_type']!r}")
    for key in ("log", "cmvn"):
        _get(st, key, False, bool)
    for key in ("delta", "n_mels", "n_freq"):
        _get(st, key, 0, int)
    for key in ("win_ms", "hop_ms", "target_level", "eps"):
        _get(st, key, 0.0, (int, float))
    if st["delta"] < 0 or st["n_mels"] < 1 or st["n_freq"] < 2:
        raise _fail("'online_mel' needs delta >= 0, n_mels >= 1 and n_freq >= 2")
    window = round(st["win_ms"] * SAMPLE_RATE / 1000)
    if not (st["hop_ms"] > 0 and 0 < window <= 2 * (st["n_freq"] - 1)):
        raise _fail("'online_mel' needs a window no longer than its FFT and a positive hop")
    return st


def check_input_scale(config: dict[str, Any]) -> float:
    """``input_scale``: what the [-1, 1] waveform is multiplied by first (32768 for a model
    trained on 16-bit integer samples read as floats, as the reference scpc's were)."""
    scale = config.get("input_scale", 1.0)
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not scale > 0:
        raise _fail(f"'input_scale' must be a positive number, got {scale!r}")
    return float(scale)


def kaldi_settings(config: dict[str, Any]) -> tuple[int, int]:
    """(features, samples per frame) of a ``kaldi`` front-end: features imported from a Kaldi
    table (``steps/make_feats.sh --import-scp``), described but not computable from audio."""
    extra = sorted(set(config) - {"name", "num_features", "frame_shift_ms"})
    if extra:
        raise _fail(f"unknown key {extra[0]!r} in the 'kaldi' front-end")
    num = config.get("num_features")
    if isinstance(num, bool) or not isinstance(num, int) or num < 1:
        raise _fail(
            f"'num_features' of the 'kaldi' front-end must be a positive integer, got {num!r}"
        )
    shift = config.get("frame_shift_ms")
    if isinstance(shift, bool) or not isinstance(shift, (int, float)) or not shift > 0:
        raise _fail(f"'frame_shift_ms' of the 'kaldi' front-end must be positive, got {shift!r}")
    samples = shift * SAMPLE_RATE / 1000
    if abs(samples - round(samples)) > 1e-6:
        raise _fail(f"a frame shift of {shift} ms is not a whole number of 16 kHz samples")
    return num, round(samples)


def check_config(config: Any) -> str:
    """Check a front-end config; return its name."""
    if not isinstance(config, dict):
        raise ScpcError(f"front-end config: must be a JSON object, got {config!r}")
    name = config.get("name")
    if name not in FRONTENDS:
        raise ScpcError(
            f"front-end config: unknown front-end name {name!r} (known: {', '.join(FRONTENDS)})"
        )
    check_input_scale(config)
    if name == "raw":
        extra = sorted(set(config) - {"name", "normalize", "normalize_eps", "input_scale"})
        if extra:
            raise ScpcError(f"front-end config: unknown key {extra[0]!r} in the 'raw' front-end")
        if not isinstance(config.get("normalize", False), bool):
            raise ScpcError("front-end config: 'normalize' of the 'raw' front-end is true or false")
        eps = config.get("normalize_eps", 1e-7)
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps > 0:
            raise ScpcError("front-end config: 'normalize_eps' of the 'raw' front-end is positive")
    if name == "stft":
        stft_settings(config)
    if name == "online_mel":
        online_mel_settings(config)
    if name == "nemo_mel":
        nemo_mel_settings(config)
    if name == "kaldi":
        kaldi_settings(config)
    if name == "mfcc":
        extra = sorted(set(config) - {"name", "num_ceps", "fbank"})
        if extra:
            raise ScpcError(f"front-end config: unknown key {extra[0]!r} in the 'mfcc' front-end")
        fbank = config.get("fbank")
        if not isinstance(fbank, dict) or fbank.get("name") != "stft":
            raise ScpcError("front-end config: 'mfcc' needs an 'fbank' that is an 'stft' config")
        st = stft_settings(fbank)
        if not st.use_log or st.include_energy:
            raise ScpcError("front-end config: an 'mfcc' fbank must be log, without energy")
        ceps = config.get("num_ceps")
        if not isinstance(ceps, int) or not 1 <= ceps <= st.num_filts:
            raise ScpcError("front-end config: 'num_ceps' must be an integer from 1 to num_filts")
    return name
