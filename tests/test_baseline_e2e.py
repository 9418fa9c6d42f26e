"""local/baseline_run.sh end to end on the mini corpus with the filter-bank upstream and a
tiny network: every stage, the options reaching the decoder, and a finished run not redone."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import ROOT, run_script

pytestmark = pytest.mark.slow  # end-to-end runs: not in ./test.sh --quick

TINY = """\
model: {hidden_size: 8, num_layers: 1}
train: {batch_size: 16, eval_batch_size: 72}
short: {utterances: 32, max_epochs: 2, learning_rate: 0.01}
full: {max_epochs: 1, learning_rate: 0.01}
specaug: {time_warp: 5}
decode: {lm_weights: [0.5, 1.0], word_bonuses: [0.0, 1.0]}
"""


def test_baseline_run_sh_trains_decodes_and_prints_the_wer_table(tmp_path, mini_data):
    conf = tmp_path / "tiny.yaml"
    conf.write_text(TINY)
    exp = tmp_path / "exp"
    opts = ["--upstream", "fbank", "--baseline-config", conf, "--vocab-size", 30]
    opts += ["--lm-order", 2, "--beam", 3, "--nj", 2, "--datadir", mini_data.parent]
    opts += ["--expdir", exp]
    proc = run_script(ROOT / "local" / "baseline_run.sh", *opts)
    bl = exp / "baselines" / "fbank" / "baseline" / "full.v30"
    lines = proc.stdout.splitlines()
    assert lines[0] == f"WER (%) of {bl}"
    assert lines[1].split() == ["set", "greedy", "beam", "3", "beam", "3", "+", "2-gram"]
    assert [line.split()[0] for line in lines[3:]] == ["dev", "test"]
    assert all(0 <= float(x) <= 300 for line in lines[3:] for x in line.split()[-3:])
    cfg = (bl / "config.yaml").read_text()
    assert "vocab_size: 30" in cfg and "beam: 3" in cfg and "order: 2" in cfg
    for f in ("bpe.model", "mvn.pt", "short/best.pt", "full/best.pt", "metrics.csv", "curves.png"):
        assert (bl / f).is_file(), f
    results = json.loads((bl / "decode" / "results.json").read_text())
    assert results["settings"]["beam3"]["beam"] == 3  # --beam reaches the decoder
    assert results["settings"]["beam3_lm2"]["lm_weight"] in (0.5, 1.0)
    assert len((bl / "decode" / "tuning.beam3_lm2.csv").read_text().splitlines()) == 5
    assert (mini_data / "lm" / "lm.2.arpa").is_file()
    for part in ("train", "dev", "test"):
        assert (exp / "baselines" / "fbank" / "reps" / "full" / part / ".complete").is_file()

    log = (bl / "train.log").read_text()
    again = run_script(ROOT / "local" / "baseline_run.sh", *opts)
    assert again.stdout == proc.stdout and (bl / "train.log").read_text() == log  # not redone

    # another width decodes the same model again; the table command shows both
    wider = run_script(ROOT / "local" / "baseline_run.sh", *opts[:8], "--beam", 4, *opts[10:])
    assert wider.stdout.splitlines()[1].split()[2:4] == ["beam", "4"]
    table = run_script(ROOT / ".venv" / "bin" / "scpc-baseline", "table", bl).stdout.splitlines()
    assert table[0].split()[:4] == ["baseline", "dev", "greedy", "dev"]
    assert table[2].startswith("fbank:full.v30 ") and len(table[2].split()) == 1 + 2 * 5


def test_real_set_layout_with_a_local_librispeech_and_lm_text(tmp_path):
    """--set real on LibriSpeech part names built from the mini corpus (no network): data
    prep of five parts, BPE on the given LM text (gzip), no KenLM so the LM comes from the
    train-clean-100 transcripts, and the three other evaluation sets scored."""
    import gzip
    import shutil

    from conftest import CORPUS

    libri = tmp_path / "LibriSpeech"
    for part, src in {
        "train-clean-100": "train",
        "dev-clean": "dev",
        "dev-other": "dev",
        "test-clean": "test",
        "test-other": "test",
    }.items():
        shutil.copytree(CORPUS / "LibriSpeech" / src, libri / part, copy_function=os.link)
    lm_text = tmp_path / "lm-norm.txt.gz"
    with gzip.open(lm_text, "wt") as f:
        for trans in sorted((CORPUS / "LibriSpeech" / "train").rglob("*.trans.txt")):
            for line in trans.read_text().splitlines():
                f.write(line.split(maxsplit=1)[1] + "\n")
    conf = tmp_path / "tiny.yaml"
    conf.write_text(TINY.replace("utterances: 32", "utterances: 16"))
    exp, data = tmp_path / "exp", tmp_path / "data"
    opts = ["--upstream", "fbank", "--set", "real", "--libri-dir", libri, "--lm-text", lm_text]
    opts += ["--baseline-config", conf, "--vocab-size", 30, "--lm-order", 2, "--beam", 2]
    opts += ["--datadir", data, "--expdir", exp]
    path = os.environ["PATH"]
    # without KenLM, whether or not this machine has it
    env = {"PATH": ":".join(p for p in path.split(":") if not (Path(p) / "lmplz").exists())}
    proc = run_script(ROOT / "local" / "baseline_run.sh", *opts, env=env)
    lines = proc.stdout.splitlines()
    assert [line.split()[0] for line in lines[3:]] == [
        "dev_clean",
        "dev_other",
        "test_clean",
        "test_other",
    ]
    assert (data / "librispeech" / "lm" / "lm.2.train_clean_100.arpa").is_file()
    assert "KenLM's lmplz is not installed" in proc.stderr
    assert not (data / "librispeech" / "download").exists()  # nothing fetched
