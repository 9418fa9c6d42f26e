"""utils/parse_options.sh: Kaldi's option parsing with a --help that lists defaults."""

import textwrap

import pytest
from conftest import ROOT, run_script


@pytest.fixture
def script(tmp_path):
    path = tmp_path / "demo.sh"
    path.write_text(
        textwrap.dedent(f"""\
        #!/usr/bin/env bash
        set -euo pipefail
        nj=4              # parallel jobs
        use_gpu=false     # run on a GPU
        libri_dir=        # an existing LibriSpeech
        . {ROOT}/utils/parse_options.sh
        echo "nj=$nj use_gpu=$use_gpu libri_dir=$libri_dir args=$*"
    """)
    )
    path.chmod(0o755)
    return path


def test_options_set_variables_and_leave_positional_arguments(script):
    out = run_script(
        script, "--nj", "8", "--libri-dir=/corpora/x", "--use-gpu", "true", "a", "--b"
    ).stdout
    assert out == "nj=8 use_gpu=true libri_dir=/corpora/x args=a --b\n"


def test_double_dash_ends_options(script):
    assert run_script(script, "--", "--nj", "3").stdout.endswith("args=--nj 3\n")


def test_unknown_option_is_an_error(script):
    proc = run_script(script, "--jobs", "3", check=False)
    assert proc.returncode == 1 and "unknown option --jobs" in proc.stderr


def test_boolean_option_takes_only_true_or_false(script):
    proc = run_script(script, "--use-gpu", "yes", check=False)
    assert proc.returncode == 1 and "takes true or false" in proc.stderr


def test_missing_value_is_an_error(script):
    proc = run_script(script, "--nj", check=False)
    assert proc.returncode == 1 and "needs a value" in proc.stderr


def test_help_lists_every_option_with_default_and_comment(script):
    out = run_script(script, "--help").stdout
    assert "--nj" in out and "[4] parallel jobs" in out
    assert "--use-gpu" in out and "[false] run on a GPU" in out
    assert "--libri-dir" in out


def test_config_file_sets_options(script, tmp_path):
    (tmp_path / "c.conf").write_text("nj=16\n")
    assert run_script(script, "--config", tmp_path / "c.conf").stdout.startswith("nj=16 ")


def test_recipes_answer_help():
    for s in ("run.sh", "local/mini_data_prep.sh", "local/download_librispeech.sh"):
        assert "--" in run_script(ROOT / s, "--help").stdout
