"""utils/slurm.sh against a real Slurm: a one-node cluster started on this machine by
tests/slurm/local_cluster.sh (Debian's slurm-wlm and munge, run as root). Skipped where Slurm
is not installed or this is not root, unless SCPC_REQUIRE_SLURM=1 (CI), where that fails."""

import os
import shutil
import signal
import subprocess
import time

import pytest
import torch
from conftest import (
    ROOT,
    file_has,
    precomputed_experiment,
    run_script,
    start_script,
    training_started,
    wait_for,
)
from test_train import feats, losses, write_config  # noqa: F401 (feats is a fixture)

pytestmark = pytest.mark.slow  # a test cluster: not in ./test.sh --quick

SLURM = ROOT / "utils" / "slurm.sh"
CLUSTER = ROOT / "tests" / "slurm" / "local_cluster.sh"


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """The environment that points Slurm's commands at the test cluster."""
    why = None
    if shutil.which("slurmctld") is None or shutil.which("munged") is None:
        why = "Slurm is not installed (apt-get install slurm-wlm munge)"
    elif os.geteuid() != 0:
        why = "slurmd must run as root"
    if why:
        if os.environ.get("SCPC_REQUIRE_SLURM") == "1":
            pytest.fail(why)
        pytest.skip(why)
    state = tmp_path_factory.mktemp("slurm")
    proc = subprocess.run([str(CLUSTER), "start", str(state)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.fail(f"the test cluster did not start: {proc.stderr}")
    env = {"SLURM_CONF": str(state / "slurm.conf"), "SCPC_POLL_MAX": "1"}
    yield env
    subprocess.run([str(CLUSTER), "stop", str(state)], check=False)


def slurm_run(env, *args, **kw):
    return run_script(SLURM, *args, env=env, **kw)


def test_array_jobs_get_their_options_logs_and_failures(slurm, tmp_path):
    body = (
        "echo job JOB task $SLURM_ARRAY_TASK_ID mem $SLURM_MEM_PER_NODE cpus $SLURM_CPUS_PER_TASK"
        " threads $OMP_NUM_THREADS; scontrol show job $SLURM_JOB_ID | grep -o 'TimeLimit=[^ ]*';"
        " exit $((JOB == 2))"
    )
    proc = slurm_run(
        slurm, "--mem", "200M", "--num-threads", "1", "--time", "5", "--max-jobs-run", "1",
        "JOB=1:3", tmp_path / "log" / "a.JOB.log", "bash", "-c", body, check=False,
    )  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"slurm.sh: 1 / 3 jobs failed, log is in {tmp_path}/log/a.*.log"
    for j in (1, 2, 3):
        text = (tmp_path / "log" / f"a.{j}.log").read_text()
        assert f"\njob {j} task {j} mem 200 cpus 1 threads 1\nTimeLimit=00:05:00\n" in text
        assert f"# Ended (code {int(j == 2)})" in text
    script = (tmp_path / "log" / "q" / "a.sh").read_text()
    assert "--array 1-3%1" in script and "--requeue" in script
    assert (tmp_path / "log" / "q" / "a.jobid").read_text().strip().isdigit()


def test_a_single_job_started_from_a_terminal_shows_its_log(slurm, tmp_path):
    command = f"{SLURM} {tmp_path}/t.log bash -c 'echo first; sleep 1; echo second'"
    shown = run_script("script", "-qec", command, "/dev/null", env=slurm).stdout
    assert "first" in shown and "second" in shown and "# Ended (code 0)" in shown


def test_a_cancelled_job_counts_as_failed(slurm, tmp_path):
    proc = start_script(
        SLURM, tmp_path / "c.log", "bash", "-c", "echo running; sleep 60", env=slurm
    )
    wait_for(file_has(tmp_path / "c.log", "\nrunning\n"), proc, "the job")
    jobid = (tmp_path / "q" / "c.jobid").read_text().strip()
    subprocess.run(["scancel", jobid], env=dict(os.environ, **slurm), check=True)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert f"job 1 of Slurm job {jobid} ended without an exit code" in err


def test_interrupting_the_launcher_cancels_its_jobs(slurm, tmp_path):
    proc = start_script(
        SLURM, tmp_path / "i.log", "bash", "-c", "echo running; sleep 60", env=slurm
    )
    wait_for(file_has(tmp_path / "i.log", "\nrunning\n"), proc, "the job")
    jobid = (tmp_path / "q" / "i.jobid").read_text().strip()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and f"cancelled Slurm job {jobid}" in err
    squeue = ["squeue", "-h", "-t", "PD,R", "-j", jobid]  # pending or running: none
    queued = subprocess.run(squeue, env=dict(os.environ, **slurm), capture_output=True, text=True)
    assert queued.stdout.strip() == ""


def test_recipe_stage_runs_through_cmd_sh_on_slurm(slurm, tmp_path):
    # stage 1 of run.sh for a config with precomputed features: steps/make_feats.sh with
    # $train_cmd = utils/slurm.sh (cmd.sh)
    data, exp = tmp_path / "data", tmp_path / "exp"
    precomputed_experiment(exp)
    run_script(
        ROOT / "run.sh", "--model", "cpc.mini", "--stage", "0", "--stop-stage", "1", "--datadir", data, "--expdir", exp,
        env=dict(slurm, SCPC_CLUSTER="slurm"),
    )  # fmt: skip
    for part in ("train", "dev"):
        feat_dir = data / "mini" / "raw-norm" / part  # cpc.mini's front-end
        assert (feat_dir / ".complete").is_file()
        assert len(list((feat_dir / "feat").glob("*.pt"))) == len(
            (data / "mini" / part / "utt2spk").read_text().splitlines()
        )
        for j in (1, 2):
            assert "# Ended (code 0)" in (feat_dir / "log" / f"make_feats.{j}.log").read_text()
        assert (
            "submitted by utils/slurm.sh as: sbatch"
            in (feat_dir / "log" / "q" / "make_feats.sh").read_text()
        )


DDP_EPOCHS = 10  # long enough that the signal, sent once training started, comes before its
# end on a loaded machine (at 4 epochs, a test under pytest-xdist once finished first)


def ddp_config(path):
    return write_config(path, max_epochs=DDP_EPOCHS, batch_size=2, checkpoint_every_steps=99)


@pytest.fixture(scope="module")
def ddp_run(slurm, feats, tmp_path_factory):  # noqa: F811
    """A 2-process DDP training run through the launcher, uninterrupted."""
    exp = tmp_path_factory.mktemp("ddp")
    cfg = ddp_config(exp / "model.yaml")
    slurm_run(slurm, "--procs-per-node", "2", "--num-threads", "1", exp / "log" / "train.log",
              "scpc-train", "--quiet", cfg, *feats)  # fmt: skip
    return exp


def test_two_process_ddp_training_through_slurm(ddp_run):
    assert "2 process(es)" in (ddp_run / "train.log").read_text()
    assert "# Ended (code 0)" in (ddp_run / "log" / "train.log").read_text()
    state = torch.load(ddp_run / "last.ckpt", weights_only=True)
    assert state["world_size"] == 2 and state["progress"]["epoch"] == DDP_EPOCHS
    assert (ddp_run / "best.ckpt").is_file()


@pytest.mark.parametrize("interruption", ["time limit", "preemption"])
def test_interrupted_ddp_training_is_requeued_and_resumes_exactly(
    slurm,
    feats,  # noqa: F811
    ddp_run,
    tmp_path,
    interruption,
):
    cfg = ddp_config(tmp_path / "model.yaml")
    env = dict(os.environ, **slurm)
    args = ["--procs-per-node", "2", "--num-threads", "1", tmp_path / "log" / "train.log"]
    launcher = start_script(SLURM, *args, "scpc-train", "--quiet", cfg, *feats, env=slurm)
    wait_for(training_started(tmp_path), launcher, "training")
    jobid = (tmp_path / "log" / "q" / "train.jobid").read_text().strip()
    if interruption == "time limit":
        # what Slurm does before the time limit with --signal=B:USR1@T: SIGUSR1 to the job
        # script, which stops training and requeues the job
        signal_name, code = "USR1", 138
        scancel = ["scancel", "--batch", "--signal=USR1", jobid]
        subprocess.run(scancel, env=env, check=True)
    else:
        # a job of a higher partition takes the node: Slurm sends SIGTERM and requeues
        signal_name, code = "TERM", 143
        urgent = ["sbatch", "--partition", "urgent", "-n", "1", "-o", "/dev/null", "--wrap", "true"]
        subprocess.run(urgent, env=env, check=True, capture_output=True)

    # Slurm holds a requeued job for 120 s (its fixed requeue delay); the test releases it once
    # the node has cleaned up after the first run
    def output(*command):
        return subprocess.run(command, env=env, capture_output=True, text=True).stdout.strip()

    def requeued_and_node_free():
        held = output("squeue", "-h", "-j", jobid, "-o", "%r") == "BeginTime"
        return held and set(output("sinfo", "-h", "-N", "-o", "%t").split()) == {"idle"}

    wait_for(requeued_and_node_free, launcher, "the requeue")
    # slurmd refuses a job whose credential is not newer, to the second, than its revocation
    time.sleep(2)
    subprocess.run(["scontrol", "update", f"JobId={jobid}_1", "StartTime=now"], env=env, check=True)
    _, err = launcher.communicate(timeout=300)
    log = (tmp_path / "log" / "train.log").read_text()
    assert launcher.returncode == 0, err + log
    assert f"# Ended (code {code})" in log and "# Restarted at" in log
    assert ("# Requeued at" in log) == (signal_name == "USR1")  # else Slurm requeued it
    train_log = (tmp_path / "train.log").read_text()
    stopped = train_log.split(f"SIG{signal_name} received: stopped at ")[1].split(";")[0]
    assert f"resuming at {stopped}" in train_log  # "epoch E, step S"
    assert losses(tmp_path) == losses(ddp_run)
    a = torch.load(ddp_run / "last.ckpt", weights_only=True)["model"]
    b = torch.load(tmp_path / "last.ckpt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
