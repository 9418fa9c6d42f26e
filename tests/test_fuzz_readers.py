"""Every reader of user files, fuzzed with hypothesis: random and mutated inputs give either a
parse or one line of scpc's own error (ScpcError), never a traceback.

The seed is fixed (derandomize) so CI runs the same examples every time; FUZZ_EXAMPLES sets
how many per reader (default 2000). Inputs that once broke a reader are kept in
tests/fixtures/bad_inputs/ (one directory per reader) and replayed first.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest
import torch
from conftest import ROOT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scpc.config import load as load_model_config
from scpc.data.alignment import read_alignments, read_items, read_phone_table
from scpc.data.datadir import DataDir, audio_entries, read_table, validate
from scpc.downstream.config import load_config
from scpc.downstream.tasks import make_task
from scpc.downstream.tasks.asv import read_trials
from scpc.errors import ScpcError
from scpc.frontend import load_frontend_config
from scpc.kaldi_tables import read_scp
from scpc.models.checkpoint import load_inference_checkpoint

pytestmark = pytest.mark.fuzz
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "2000"))
BAD_INPUTS = ROOT / "tests" / "fixtures" / "bad_inputs"
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)

# characters that matter to these formats, and some that should not be there
ALPHABET = list("ab01-_./|#:;=[]{}'\" \t\n\r\\") + ["\x00", "é", "\ufeff", "\u2028", "9", "e", "-1"]


def text_like(valid: str):
    """Random text over :data:`ALPHABET`, or ``valid`` with random edits (insertions,
    deletions, replacements)."""
    edits = st.lists(
        st.tuples(st.integers(0, max(len(valid), 1)), st.integers(0, 3), st.sampled_from(ALPHABET)),
        max_size=6,
    )

    def mutate(ops):
        s = valid
        for pos, cut, ins in ops:
            pos = min(pos, len(s))
            s = s[:pos] + ins + s[pos + cut :]
        return s

    return st.one_of(
        st.lists(st.sampled_from(ALPHABET), max_size=60).map("".join), edits.map(mutate)
    )


def one_line_or_parse(read, content: bytes | str, name: str):
    """Write ``content`` to a file named ``name`` in a fresh dir and read it with ``read``."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / name
        if isinstance(content, str):
            path.write_bytes(content.encode("utf-8", "surrogatepass"))
        else:
            path.write_bytes(content)
        try:
            read(path)
        except ScpcError as e:
            assert "\n" not in str(e), f"a multi-line error: {e!r}"


def replay(reader: str, read, name: str) -> int:
    """Run the kept bad inputs of ``reader``; how many there were."""
    files = sorted((BAD_INPUTS / reader).glob("*")) if (BAD_INPUTS / reader).is_dir() else []
    for f in files:
        one_line_or_parse(read, f.read_bytes(), name)
    return len(files)


VALID_TABLE = "u1 /a/b.wav\nu2 sox x.flac -t wav - |\n"
VALID_ITEMS = "#file onset offset #phone prev-phone next-phone speaker\nu1 0.1 0.2 AA SIL B s1\n"
VALID_YAML = (
    "name: x\ntraining:\n  batch_size: 4\n  learning_rate: 1.0e-3\nconv:\n  output_size: 8\n"
)
VALID_TASK = "data:\n  train: data/mini/train\ntrain:\n  learning_rate: 1.0e-2\n  max_steps: 10\n"
VALID_FRONTEND = (
    '{"name": "stft", "bank": {"name": "fbank", "num_filts": 41}, "frame_length_ms": 25}'
)
VALID_TRIALS = "1 u1 u2\n0 u1 u3\n"
VALID_ALI = "u1 0 0 1 1 2\nu2 3 3\n"
VALID_PHONES = "SIL 0\nAA 1\n"
VALID_SCP = "u1 /x/feats.ark:9\nu2 /x/feats.ark:120\n"


def read_segments(path: Path):
    d = path.parent
    (d / "wav.scp").write_text("r1 /a.wav\nr2 /b.wav\n")
    path.rename(d / "segments")
    return list(audio_entries(DataDir(d)))


def validate_data_dir(path: Path):
    """utt2spk as fuzzed, with a matching spk2utt where it parses, through the validator."""
    d = path.parent
    path.rename(d / "utt2spk")
    (d / "wav.scp").write_text("u1 /a.wav\n")
    (d / "text").write_text("u1 A\n")
    validate(d, check_audio=False)


VALID_SUPERVISION = (
    '{"id": "r1", "recording_id": "r1", "start": 0.0, "duration": 1.0, "channel": 0, '
    '"text": "A B", "speaker": "s1"}\n'
)


def from_lhotse_supervisions(path: Path):
    """A fuzzed supervisions manifest beside a valid recordings one, to a data dir."""
    from scpc.data.lhotse_manifests import from_lhotse

    d = path.parent
    rec = {"id": "r1", "sources": [{"type": "file", "channels": [0], "source": "/a.wav"}],
           "sampling_rate": 16000, "num_samples": 16000, "duration": 1.0}  # fmt: skip
    (d / "recordings.jsonl").write_text(json.dumps(rec) + "\n")
    from_lhotse(d / "recordings.jsonl", path, d / "out")


READERS = {
    "table": (read_table, "wav.scp", VALID_TABLE),
    "segments": (read_segments, "segments.in", "s1 r1 0.0 1.5\ns2 r2 0.5 -1\n"),
    "validate": (validate_data_dir, "utt2spk.in", "u1 s1\n"),
    "abx_items": (read_items, "dev.item", VALID_ITEMS),
    "trials": (lambda p: read_trials(p, {"u1", "u2", "u3"}), "trials", VALID_TRIALS),
    "alignments": (lambda p: list(read_alignments(p)), "ali.txt", VALID_ALI),
    "phones": (read_phone_table, "phones.txt", VALID_PHONES),
    "model_yaml": (load_model_config, "model.yaml", VALID_YAML),
    "task_yaml": (lambda p: load_config(p, make_task("pr")), "superb.yaml", VALID_TASK),
    "frontend_json": (load_frontend_config, "fbank.json", VALID_FRONTEND),
    "feats_scp": (read_scp, "feats.scp", VALID_SCP),
    "lhotse_supervisions": (from_lhotse_supervisions, "supervisions.jsonl", VALID_SUPERVISION),
}


@pytest.mark.parametrize("reader", sorted(READERS))
def test_fuzzed_text_reader_parses_or_says_one_line(reader):
    read, name, valid = READERS[reader]
    replay(reader, read, name)

    @FUZZ
    @given(text_like(valid))
    def fuzz(content):
        one_line_or_parse(read, content, name)

    fuzz()


@pytest.fixture(scope="module")
def valid_checkpoint(tmp_path_factory):
    from scpc.frontend import load_frontend_config as lfc
    from scpc.models.checkpoint import save_inference_checkpoint
    from scpc.models.encoders import FeedForwardEncoder

    path = tmp_path_factory.mktemp("ckpt") / "best.ckpt"
    torch.manual_seed(0)
    save_inference_checkpoint(
        path, FeedForwardEncoder(41, 4), lfc(ROOT / "conf/feats/fbank-41.json")
    )
    return path.read_bytes()


def test_fuzzed_checkpoint_bytes_load_or_say_one_line(valid_checkpoint):
    replay("checkpoint", load_inference_checkpoint, "best.ckpt")
    size = len(valid_checkpoint)
    edits = st.lists(
        st.tuples(st.integers(0, size - 1), st.binary(min_size=1, max_size=8)), max_size=4
    )

    def mutate(ops):
        b = bytearray(valid_checkpoint)
        for pos, new in ops:
            b[pos : pos + len(new)] = new
        return bytes(b)

    cut = st.integers(0, size).map(lambda n: valid_checkpoint[:n])
    content = st.one_of(st.binary(max_size=512), edits.map(mutate), cut)

    @settings(FUZZ, max_examples=max(EXAMPLES // 4, 50))
    @given(content)
    def fuzz(data):
        one_line_or_parse(load_inference_checkpoint, data, "best.ckpt")

    fuzz()
