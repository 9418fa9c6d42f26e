"""The ZeroSpeech abxLS benchmark through zerospeech-benchmarks' ``zrc`` command.

What can be done without the network lives here and is tested: the reachability check,
params.yaml and meta.yaml rendered from the templates in conf/zrc/, the utterance lists of
the pulled dataset (its index.json), and the conversion of zrc's score CSV into scpc-abx's
per-part CSVs. ``zrc`` itself needs https://download.zerospeech.com (it fetches its
repository index at start-up and pulls the dataset from there).
"""

from __future__ import annotations

import csv
import datetime
import json
import os
import string
import sys
import types
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from scpc.audio import SAMPLE_RATE
from scpc.errors import ScpcError
from scpc.eval import abx
from scpc.io import atomic_write

# zrc downloads this index at start-up; tests point SCPC_ZRC_REPO_URL at a local copy
REPO_URL = "https://download.zerospeech.com/repo.json"
DATASET = "abxLS-dataset"
SUBSETS = ("dev-clean", "dev-other", "test-clean", "test-other")
# zerospeech-benchmarks spells the euclidean distance "euclidian"
ZRC_DISTANCES = {
    "cosine": "cosine",
    "euclidean": "euclidian",
    "kl": "kl",
    "kl_symmetric": "kl_symmetric",
}
# the columns zrc's abxLS task writes to scores/<result_filename>.csv
ZRC_SCORE_COLUMNS = ("subset", "speaker_mode", "context_mode", "granularity", "score")


def repo_url() -> str:
    return os.environ.get("SCPC_ZRC_REPO_URL", REPO_URL)


def check_online(url: str | None = None, timeout: float = 15.0) -> None:
    """One-line ScpcError unless the ZeroSpeech repository index can be fetched."""
    url = url or repo_url()
    host = urllib.parse.urlsplit(url).netloc or url
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            r.read(1)
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", None) or e
        raise ScpcError(
            f"cannot reach {host} ({reason}): the abxLS benchmark needs the network for zrc's "
            "index and dataset; score the mini corpus offline with --set mini"
        ) from None


# ----------------------------------------------------------------------------- templates


def render(template: str | os.PathLike, values: dict[str, Any]) -> dict[str, Any]:
    """Substitute ``${name}`` in a YAML template (values YAML-quoted); the parsed result."""
    path = Path(template)
    try:
        text = path.read_text()
    except OSError as e:
        raise ScpcError(f"{path}: cannot read the template ({e.strerror})") from None
    # JSON scalars are valid YAML flow scalars: quotes and colons in values stay literal
    quoted = {k: json.dumps(v) for k, v in values.items()}
    try:
        out = string.Template(text).substitute(quoted)
    except KeyError as e:
        raise ScpcError(f"{path}: no value for ${{{e.args[0]}}}") from None
    except ValueError as e:
        raise ScpcError(f"{path}: {e}") from None
    try:
        data = yaml.safe_load(out)
    except yaml.YAMLError as e:
        raise ScpcError(f"{path}: not YAML after substitution ({e})") from None
    if not isinstance(data, dict):
        raise ScpcError(f"{path}: not a YAML mapping")
    return data


def write_yaml(path: str | os.PathLike, data: dict[str, Any]) -> None:
    with atomic_write(path) as f:
        yaml.safe_dump(data, f, sort_keys=False)


def params_values(downsampling_factor: int, distance: str, cuda: bool) -> dict[str, Any]:
    if distance not in ZRC_DISTANCES:
        raise ScpcError(
            f"unknown ABX distance {distance!r}; choose from {', '.join(ZRC_DISTANCES)}"
        )
    return {
        "feature_size": downsampling_factor / SAMPLE_RATE,
        "cuda": cuda,
        "distance_mode": ZRC_DISTANCES[distance],
        "max_size_group": abx.MAX_SIZE_GROUP,
        "max_x_across": abx.MAX_X_ACROSS,
        "seed": abx.SEED,
    }


def meta_values(
    provenance: dict[str, Any], info: dict[str, Any], pca: int | None
) -> dict[str, Any]:
    """What a checkpoint says about itself, for meta.yaml's model_info."""
    config = yaml.safe_load(provenance.get("model_yaml") or "{}") or {}
    name = provenance.get("name") or config.get("name") or "untrained"
    about = config.get("system_description") or info["encoder"]
    desc = (
        f"scpc {name}: {about}; {info['num_params'] / 1e6:.2f}M parameters, "
        f"{info['output_size']}-dim frames at {info['frame_rate_hz']} Hz"
    )
    if pca:
        desc += f", PCA to {pca} dimensions"
    return {
        "system_description": desc,
        "train_set": provenance.get("train_data") or "none (not trained)",
        "year": datetime.date.today().year,
    }


# ------------------------------------------------------------------------------ dataset


def dataset_dir(app_dir: str | os.PathLike) -> Path:
    """Where ``zrc datasets:pull`` puts abxLS (zrc's APP_DIR/datasets/<name>)."""
    return Path(app_dir) / "datasets" / DATASET


def subset_audio(dataset: str | os.PathLike, subset: str) -> list[tuple[str, Path]]:
    """(utterance id, wav path) of one subset, from the dataset's index.json."""
    index = Path(dataset) / "index.json"
    try:
        with open(index) as f:
            data = json.load(f)
    except FileNotFoundError:
        raise ScpcError(
            f"{index}: missing; pull the dataset (zrc datasets:pull {DATASET})"
        ) from None
    except json.JSONDecodeError as e:
        raise ScpcError(f"{index}: not JSON ({e})") from None
    key = subset.replace("-", "_")
    try:
        files = data["subsets"][key]["items"]["wav_list"]["files_list"]
    except (KeyError, TypeError):
        raise ScpcError(f"{index}: no wav_list for subset {key}") from None
    root = Path(data.get("root_dir") or dataset)
    return sorted((Path(p).stem, root / p) for p in files)


def write_wav_scp(entries: Sequence[tuple[str, Path]], out: str | os.PathLike) -> None:
    with atomic_write(out) as f:
        for utt, path in entries:
            f.write(f"{utt} {path}\n")


# ------------------------------------------------------------------------------- scores


def read_zrc_scores(submission: str | os.PathLike) -> list[dict[str, str]]:
    """Rows of the score CSV that ``zrc benchmarks:run abxLS`` wrote into the submission."""
    sub = Path(submission)
    try:
        params = yaml.safe_load((sub / "params.yaml").read_text()) or {}
    except FileNotFoundError:
        raise ScpcError(f"{sub / 'params.yaml'}: missing; not an abxLS submission") from None
    path = sub / "scores" / f"{params.get('result_filename', 'score_all_phonetic')}.csv"
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
    except FileNotFoundError:
        raise ScpcError(f"{path}: missing; run zrc benchmarks:run abxLS {sub}") from None
    missing = set(ZRC_SCORE_COLUMNS) - set(reader.fieldnames or ())
    if missing:
        raise ScpcError(f"{path}: no column {', '.join(sorted(missing))}")
    return rows


def context_of(row: dict[str, str]) -> str:
    """scpc-abx's context mode: within/any for phoneme items, 'triphone' for triphone items."""
    if "triphone" in row["granularity"] or "triphone" in row["context_mode"]:
        return "triphone"
    return "any" if "any" in row["context_mode"] else "within"


def convert_scores(
    submission: str | os.PathLike, system: str, out_dir: str | os.PathLike, distance: str
) -> list[Path]:
    """Write <out_dir>/<system>.<subset>.csv in scpc-abx's columns; their paths."""
    by_subset: dict[str, list[dict[str, str]]] = {}
    for row in read_zrc_scores(submission):
        try:
            err = 100 * float(row["score"])
        except ValueError:
            continue  # '-' for a subset that was not run
        by_subset.setdefault(row["subset"], []).append(
            {
                "speaker_mode": row["speaker_mode"],
                "context_mode": context_of(row),
                "distance": distance,
                "abx_error_pct": f"{err:.4f}",
            }
        )
    written = []
    for subset, rows in sorted(by_subset.items()):
        path = Path(out_dir) / f"{system}.{subset}.csv"
        abx.write_scores(path, rows)
        written.append(path)
    return written


# ---------------------------------------------------------------------------------- zrc


def run_zrc(argv: Sequence[str]) -> int:
    """zerospeech-benchmarks' CLI in this process, with a stand-in for a broken torchaudio."""
    try:
        import torchaudio  # noqa: F401
    except Exception:  # absent, or a CUDA build that cannot load: zrc's abxLS never uses it
        sys.modules["torchaudio"] = types.ModuleType("torchaudio")
    try:
        from zerospeech.startup import main
    except ImportError as e:
        raise ScpcError(
            f"zerospeech-benchmarks is not installed ({e}); utils/setup_zrc.sh installs it"
        ) from None
    except Exception as e:  # it fetches its repository index while being imported
        first = str(e).splitlines()[0] if str(e) else ""
        raise ScpcError(f"zrc could not start ({type(e).__name__}: {first})") from None
    sys.argv = ["zrc", *argv]
    try:
        main()
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return 0
