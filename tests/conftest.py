import collections
import json
import os
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "corpus" / "mini"
SLOW_UNMARKED_S = 3.0  # a test not marked slow that takes longer is named at the end
# Seconds each test file took in a full run over two workers, for the order in which
# ./test.sh hands files to its workers (only the order depends on it; a file not in it is
# placed by its number of slow tests). Rewrite it with SCPC_WRITE_FILE_SECONDS=1 ./test.sh.
FILE_SECONDS = Path(__file__).with_name("file_seconds.json")


def pytest_configure(config):
    """Under pytest-xdist, each worker and the commands it starts get an equal share of the
    cores (OMP_NUM_THREADS, which torch reads at import): two workers of two torch threads each
    on two cores spin against each other and run slower than one thread each."""
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers and "OMP_NUM_THREADS" not in os.environ:
        threads = str(max(1, len(os.sched_getaffinity(0)) // int(workers)))
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = threads


def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist, the longest test files first, so that the workers finish together
    (./test.sh hands each file whole to the next free worker, in this order): by the seconds
    in FILE_SECONDS, else by their number of slow tests. Each file's own order is kept."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    known = json.loads(FILE_SECONDS.read_text()) if FILE_SECONDS.is_file() else {}
    slow = collections.Counter(i.nodeid.split("::")[0] for i in items if "slow" in i.keywords)

    def seconds(item):
        name = item.nodeid.split("::")[0]
        return -known.get(name, 10 * slow[name])

    items.sort(key=seconds)


def pytest_terminal_summary(terminalreporter, config):
    """Names the tests not marked slow (nor fuzz, which the quick tier runs with fewer
    examples) that took longer than SLOW_UNMARKED_S, so that the quick tier (./test.sh
    --quick, which leaves slow tests out) stays quick. With SCPC_WRITE_FILE_SECONDS=1, records
    the seconds of each file run (set-up and teardown included) in FILE_SECONDS."""
    reports = [r for rs in terminalreporter.stats.values() for r in rs if hasattr(r, "when")]
    long = sorted(
        (r.duration, r.nodeid)
        for r in reports
        if r.when == "call" and r.passed and r.duration > SLOW_UNMARKED_S
        and "slow" not in r.keywords and "fuzz" not in r.keywords
    )  # fmt: skip
    if long:
        terminalreporter.section("tests to mark slow (pytest.mark.slow)")
        for duration, nodeid in reversed(long):
            terminalreporter.write_line(f"{duration:6.1f} s  {nodeid}")
    if os.environ.get("SCPC_WRITE_FILE_SECONDS") == "1":
        write_file_seconds(reports)
        terminalreporter.write_line(f"wrote {FILE_SECONDS}")


def write_file_seconds(reports):
    """FILE_SECONDS with the files of this run updated (the others kept as they were)."""
    seconds = collections.Counter()
    for r in reports:
        seconds[r.nodeid.split("::")[0]] += r.duration
    known = json.loads(FILE_SECONDS.read_text()) if FILE_SECONDS.is_file() else {}
    known.update({name: round(s, 1) for name, s in seconds.items()})
    FILE_SECONDS.write_text(json.dumps(dict(sorted(known.items())), indent=0) + "\n")


def run_script(*args, cwd=ROOT, check=True, env=None):
    """Run a repository script with the project's environment; return the CompletedProcess."""
    full_env = dict(os.environ, LC_ALL="C", SCPC_QUIET="1", **(env or {}))
    full_env["PATH"] = f"{ROOT / '.venv' / 'bin'}:{full_env['PATH']}"
    proc = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=full_env, capture_output=True, text=True
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="session")
def mini_data(tmp_path_factory):
    """The mini corpus prepared once per test session by local/mini_data_prep.sh."""
    data = tmp_path_factory.mktemp("data") / "mini"
    run_script(ROOT / "local" / "mini_data_prep.sh", data)
    return data


def mini_feat_dirs(mini_data, out, feat_type):
    """The front-end config of conf/feats/<feat_type>.json and feature dirs of the mini
    corpus's dev and test parts made with it under ``out`` (training and validation sets)."""
    from scpc.data.featdir import compute_feat_dir
    from scpc.frontend import load_frontend_config

    frontend = load_frontend_config(ROOT / "conf" / "feats" / f"{feat_type}.json")
    dirs = []
    for part in ("dev", "test"):
        compute_feat_dir(mini_data / part, out / part, frontend)
        dirs.append(out / part)
    return frontend, dirs


def train_tiny(out, config, dirs):
    """scpc-train of ``config`` (a dict) on ``dirs`` in ``out/exp``; returns that directory."""
    import yaml

    exp = out / "exp"
    exp.mkdir()
    (exp / "model.yaml").write_text(yaml.safe_dump(config))
    run_script(".venv/bin/scpc-train", "--quiet", exp / "model.yaml", *dirs)
    return exp


def start_script(*args, env=None):
    """A repository script started in the background (as run_script would run it)."""
    full_env = dict(os.environ, LC_ALL="C", SCPC_QUIET="1", **(env or {}))
    full_env["PATH"] = f"{ROOT / '.venv' / 'bin'}:{full_env['PATH']}"
    return subprocess.Popen(
        [str(a) for a in args], cwd=ROOT, env=full_env, stderr=subprocess.PIPE, text=True
    )


def wait_for(condition, proc, what, timeout=120):
    """Polls ``condition()`` until true; fails if ``proc`` ends first or after ``timeout`` s."""
    deadline = time.time() + timeout
    while not condition():
        assert proc.poll() is None, f"{what}: the process ended ({proc.returncode})"
        assert time.time() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.02)


def file_has(path, text):
    """A condition for wait_for: ``text`` is in the file at ``path``."""
    return lambda: path.exists() and text in path.read_text()


def training_started(exp):
    """A condition for wait_for: scpc-train logged its first step into ``exp``/metrics.csv."""
    metrics = exp / "metrics.csv"
    return lambda: metrics.exists() and len(metrics.read_text().splitlines()) >= 2


def write_training_config(path, base, **training):
    """``base`` (a config dict) with ``training`` keys overridden, written to ``path``."""
    import copy

    import yaml

    config = copy.deepcopy(base)
    config["training"].update(training)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config))
    return path


def metric_rows(exp):
    """metrics.csv's rows of ``exp`` as (split, epoch, step, loss, accuracy) strings."""
    return [r.split(",")[:5] for r in (exp / "metrics.csv").read_text().splitlines()[1:]]


def kill_once_saved(args, last, timeout=120):
    """Start a command, SIGKILL it as soon as ``last`` (its training state) exists."""
    import signal

    proc = subprocess.Popen(
        [str(a) for a in args],
        env=dict(os.environ, SCPC_QUIET="1"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + timeout
    while not last.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"


def precomputed_experiment(exp, model="cpc.mini"):
    """exp/<model>/version_0/model.yaml frozen from conf with ``feats: precomputed``, so that
    run.sh's stage 1 computes feature dirs (steps/make_feats.sh through $train_cmd)."""
    frozen = exp / model / "version_0" / "model.yaml"
    conf, feats = ROOT / "conf" / f"model.{model}.yaml", ROOT / "conf" / "feats"
    run_script(ROOT / ".venv" / "bin" / "scpc-config", "freeze", conf, feats, frozen)
    text = frozen.read_text()
    assert "\nfeats: on_the_fly\n" in text
    frozen.write_text(text.replace("\nfeats: on_the_fly\n", "\nfeats: precomputed\n"))
    return frozen


def tb_scalars(run_dir):
    """tag -> [(step, value)] of the TensorBoard events under ``run_dir``, read back with
    tensorboard's own reader (purged steps of resumed runs left out, as TensorBoard shows)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
