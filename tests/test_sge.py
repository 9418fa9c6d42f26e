"""utils/queue.sh against a real Grid Engine: Debian's gridengine packages on this machine,
configured as a one-node cluster by tests/sge/local_cluster.sh. That rewrites the machine's
Grid Engine configuration, so it runs only with SCPC_TEST_SGE=1 (set by .ci/run)."""

import os
import subprocess

import pytest
import torch
from conftest import ROOT, file_has, precomputed_experiment, run_script, start_script, wait_for
from test_train import feats, write_config  # noqa: F401 (feats is a fixture)

pytestmark = pytest.mark.slow  # a test cluster: not in ./test.sh --quick

QUEUE = ROOT / "utils" / "queue.sh"
CLUSTER = ROOT / "tests" / "sge" / "local_cluster.sh"


@pytest.fixture(scope="module")
def sge():
    if os.environ.get("SCPC_TEST_SGE") != "1":
        pytest.skip("SCPC_TEST_SGE=1 lets the tests configure this machine's Grid Engine (CI)")
    proc = subprocess.run([str(CLUSTER), "start"], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.fail(f"the Grid Engine did not start: {proc.stderr}")
    yield {
        "SGE_ROOT": "/var/lib/gridengine",
        "SGE_CELL": "default",
        "SCPC_POLL_MAX": "1",
    }
    subprocess.run([str(CLUSTER), "stop"], check=False)


def test_array_jobs_get_their_slots_logs_and_failures(sge, tmp_path):
    body = (
        "echo job JOB task $SGE_TASK_ID slots $NSLOTS threads $OMP_NUM_THREADS; exit $((JOB == 1))"
    )
    proc = run_script(QUEUE, "--mem", "100M", "--num-threads", "2", "--max-jobs-run", "1",
                      "JOB=1:2", tmp_path / "log" / "a.JOB.log", "bash", "-c", body,
                      env=sge, check=False)  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"queue.sh: 1 / 2 jobs failed, log is in {tmp_path}/log/a.*.log"
    for j in (1, 2):
        text = (tmp_path / "log" / f"a.{j}.log").read_text()
        assert f"\njob {j} task {j} slots 2 threads 2\n" in text
        assert f"# Ended (code {int(j == 1)})" in text
    assert "-tc 1" in (tmp_path / "log" / "q" / "a.sh").read_text()


def test_a_job_stopped_by_usr1_is_rescheduled(sge, tmp_path):
    # the command asks its job script for SIGUSR1 the first time and exits 138 on it, like
    # scpc-train after saving; the job script exits 99 and Grid Engine runs it again
    body = (
        'if [ "${RESTARTED:-0}" != 1 ]; then trap "echo saved; exit 138" USR1; '
        "kill -USR1 $PPID; sleep 30 & wait; fi; echo finished"
    )
    run_script(QUEUE, tmp_path / "r.log", "bash", "-c", body, env=sge)
    text = (tmp_path / "r.log").read_text()
    assert "# Ended (code 138)" in text and "# Requeued at" in text
    assert "finished" in text.split("# Restarted at")[1]


def test_a_deleted_job_counts_as_failed(sge, tmp_path):
    proc = start_script(QUEUE, tmp_path / "d.log", "bash", "-c", "echo running; sleep 60", env=sge)
    wait_for(file_has(tmp_path / "d.log", "\nrunning\n"), proc, "the job")
    jobid = (tmp_path / "q" / "d.jobid").read_text().strip()
    subprocess.run(["qdel", jobid], env=dict(os.environ, **sge), check=True, capture_output=True)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert f"job 1 of Grid Engine job {jobid} ended without an exit code" in err


def test_recipe_stage_runs_through_cmd_sh_on_grid_engine(sge, tmp_path):
    # a config with precomputed features: stage 1 runs steps/make_feats.sh through $train_cmd
    data = tmp_path / "data"
    precomputed_experiment(tmp_path / "exp")
    run_script(ROOT / "run.sh", "--model", "cpc.mini", "--stage", "0", "--stop-stage", "1", "--datadir", data,
               "--expdir", tmp_path / "exp", env=dict(sge, SCPC_CLUSTER="sge"))  # fmt: skip
    for part in ("train", "dev"):
        feat_dir = data / "mini" / "raw-norm" / part  # cpc.mini's front-end
        assert (feat_dir / ".complete").is_file()
        assert "# Ended (code 0)" in (feat_dir / "log" / "make_feats.2.log").read_text()


def test_two_process_ddp_training_through_queue_sh(sge, feats, tmp_path):  # noqa: F811
    cfg = write_config(tmp_path / "model.yaml", max_epochs=1, batch_size=2)
    run_script(QUEUE, "--procs-per-node", "2", "--num-threads", "1", tmp_path / "log" / "train.log",
               "scpc-train", "--quiet", cfg, *feats, env=sge)  # fmt: skip
    assert "2 process(es)" in (tmp_path / "train.log").read_text()
    assert torch.load(tmp_path / "last.ckpt", weights_only=True)["world_size"] == 2
