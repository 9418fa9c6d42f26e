"""Speech synthesis with phone timings: Debian's flite voices and festival's ked diphone voice."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from scpc.data.alignment import SILENCE, Segment

from .plan import VOICES, Rendering

# The voices' phone set (CMU "radio" phones) mapped to CMUdict's 39 phones plus silence.
TO_ARPABET = {
    p: p.upper()
    for p in (
        "aa ae ah ao aw ay b ch d dh eh er ey f g hh ih iy jh k l m n ng ow oy p r s sh t th "
        "uh uw v w y z zh"
    ).split()
}
TO_ARPABET.update({"ax": "AH", "axr": "ER", "pau": SILENCE, "h#": SILENCE, "brth": SILENCE})


@dataclass
class Synthesis:
    samples: np.ndarray  # float64 in [-1, 1] at the voice's rate
    sample_rate: int
    segments: list[Segment]  # phones, CMUdict symbols, times in seconds


def require_tools() -> None:
    missing = [t for t in ("flite", "festival") if shutil.which(t) is None]
    if missing:
        raise SystemExit(
            "regenerating the mini corpus needs "
            + " and ".join(missing)
            + ": apt-get install flite festival festvox-kdlpc16k festlex-cmu"
        )


def engine_settings(r: Rendering) -> tuple[float, float | None]:
    """Duration stretch and pitch to ask the synthesiser for, before the formant resampling.

    Resampling by the formant factor a shortens the audio by a and raises the pitch by a,
    so ask for a*tempo and f0/a.
    """
    a = r.speaker.formant
    return r.tempo * a, (None if r.f0 is None else r.f0 / a)


def synthesize_flite(r: Rendering, workdir: Path) -> Synthesis:
    _, voice, _, pitch_settable = VOICES[r.speaker.voice]
    stretch, f0 = engine_settings(r)
    wav = workdir / "flite.wav"
    cmd = ["flite", "-voice", voice, "--setf", f"duration_stretch={stretch:.4f}"]
    if pitch_settable and f0 is not None:
        cmd += ["--setf", f"int_f0_target_mean={f0:.2f}"]
    cmd += ["-t", r.text, "-o", str(wav), "-psdur"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    ends = [tok.rsplit(":", 1) for tok in out.split()]
    x, sr = sf.read(wav, dtype="float64")
    return Synthesis(x, sr, _segments([(p, float(t)) for p, t in ends], len(x) / sr))


def synthesize_festival(renderings: list[Rendering], workdir: Path) -> list[Synthesis]:
    """One festival process for many renderings: starting festival costs about a second."""
    lines = ["(voice_ked_diphone)"]
    for i, r in enumerate(renderings):
        stretch, f0 = engine_settings(r)
        text = r.text.replace("\\", " ").replace('"', " ")
        lines += [
            f"(Parameter.set 'Duration_Stretch {stretch:.4f})",
            f"(set! int_lr_params '((target_f0_mean {f0:.2f}) (target_f0_std {0.15 * f0:.2f})"
            " (model_f0_mean 170) (model_f0_std 34)))",
            f"(set! utt (eval (list 'Utterance 'Text \"{text}\")))",
            "(utt.synth utt)",
            f'(utt.save.wave utt "{workdir}/f{i}.wav" \'riff)',
            f'(utt.save.segs utt "{workdir}/f{i}.lab")',
        ]
    script = workdir / "batch.scm"
    script.write_text("\n".join(lines) + "\n")
    subprocess.run(["festival", "-b", str(script)], check=True, capture_output=True)
    results = []
    for i in range(len(renderings)):
        x, sr = sf.read(workdir / f"f{i}.wav", dtype="float64")
        ends = []
        body = (workdir / f"f{i}.lab").read_text().split("#", 1)[1]
        for line in body.splitlines():
            fields = line.split()
            if len(fields) == 3:
                ends.append((fields[2], float(fields[0])))
        results.append(Synthesis(x, sr, _segments(ends, len(x) / sr)))
    return results


def synthesize(renderings: list[Rendering]) -> list[Synthesis]:
    """Synthesise renderings in order; those of festival voices go through one process."""
    with tempfile.TemporaryDirectory(prefix="mini_tts_") as tmp:
        workdir = Path(tmp)
        out: list[Synthesis | None] = [None] * len(renderings)
        festival = [i for i, r in enumerate(renderings) if VOICES[r.speaker.voice][0] == "festival"]
        for i, r in enumerate(renderings):
            if i not in festival:
                out[i] = synthesize_flite(r, workdir)
        if festival:
            for i, s in zip(
                festival, synthesize_festival([renderings[i] for i in festival], workdir)
            ):
                out[i] = s
    return out  # type: ignore[return-value]


def _segments(ends: list[tuple[str, float]], duration: float) -> list[Segment]:
    """Phone end times to segments, clipped to the audio (kal16's last pause runs past it)."""
    segments = []
    start = 0.0
    for phone, end in ends:
        if phone not in TO_ARPABET:
            raise ValueError(f"unknown phone {phone!r} from the synthesiser")
        end = min(end, duration)
        if end > start:
            segments.append(Segment(TO_ARPABET[phone], start, end))
            start = end
    if segments and segments[-1].phone != SILENCE and duration - start > 0.03:
        raise ValueError(f"phones end at {start:.3f}s but the audio lasts {duration:.3f}s")
    if start < duration:
        segments.append(Segment(SILENCE, start, duration))
    return _merge_silence(segments)


def _merge_silence(segments: list[Segment]) -> list[Segment]:
    merged: list[Segment] = []
    for s in segments:
        if merged and merged[-1].phone == SILENCE and s.phone == SILENCE:
            merged[-1] = Segment(SILENCE, merged[-1].start, s.end)
        else:
            merged.append(s)
    return merged
