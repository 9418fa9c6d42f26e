"""The job launchers: utils/run_local.sh, the option mapping and job scripts they share
(utils/launcher_lib.sh), utils/queue.sh against a stand-in Grid Engine, and cmd.sh."""

import os
import shlex
import signal
import subprocess
import textwrap

import pytest
import torch
from conftest import ROOT, file_has, run_script, start_script, training_started, wait_for
from test_train import feats, write_config  # noqa: F401 (feats is a fixture)

from scpc.errors import ScpcError
from scpc.train.distributed import first_host, slurm_environment

LAUNCHER = ROOT / "utils" / "run_local.sh"
QUEUE = ROOT / "utils" / "queue.sh"
LIB = ROOT / "utils" / "launcher_lib.sh"


def test_run_local_substitutes_job_and_keeps_arguments(tmp_path):
    log = tmp_path / "log" / "x.JOB.log"
    run_script(
        LAUNCHER, "--mem", "4G", "--gpu", "1", "--time=1:00", "--num-threads", "3",
        "JOB=1:3", log, "python3", "-c",
        "import os, sys; print(sys.argv[1:], os.environ['OMP_NUM_THREADS'])",
        "job JOB", "a  b", "$HOME", '"q"',
    )  # fmt: skip
    for j in (1, 2, 3):
        lines = (tmp_path / "log" / f"x.{j}.log").read_text().splitlines()
        assert lines[0].startswith("# python3 -c ") and lines[1].startswith("# Started at ")
        assert lines[2] == str([f"job {j}", "a  b", "$HOME", '"q"']) + " 3"
        assert lines[3].startswith("# Accounting: time=") and "threads=3" in lines[3]
        assert lines[4].startswith("# Ended (code 0) at ")


def test_run_local_reports_failures(tmp_path):
    proc = run_script(
        LAUNCHER, "JOB=1:4", tmp_path / "f.JOB.log", "bash", "-c", "echo out JOB; exit $((JOB % 2))",
        check=False,
    )  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"run_local.sh: 2 / 4 jobs failed, log is in {tmp_path}/f.*.log"
    assert "out 3\n# Accounting" in (tmp_path / "f.3.log").read_text()
    assert "# Ended (code 1)" in (tmp_path / "f.3.log").read_text()
    assert "# Ended (code 0)" in (tmp_path / "f.2.log").read_text()
    proc = run_script(LAUNCHER, tmp_path / "one.log", "false", check=False)
    assert proc.returncode == 1 and f"log is in {tmp_path}/one.log" in proc.stderr


def test_run_local_shell_operators_and_usage(tmp_path):
    run_script(LAUNCHER, "JOB=2", tmp_path / "p.JOB.log", "echo", "a|JOB", "|", "tr", "a", "b")
    assert "\nb|2\n" in (tmp_path / "p.2.log").read_text()
    bad_args = (
        [tmp_path / "l.log"],
        ["JOB=1:2", tmp_path / "same.log", "true"],
        ["JOB=3:1"],
        ["--nodes", "2", tmp_path / "n.log", "true"],
        ["--num-threads", "0", tmp_path / "t.log", "true"],
        ["--max-jobs-run", "x", tmp_path / "m.log", "true"],
    )
    for bad in bad_args:
        proc = run_script(LAUNCHER, *bad, check=False)
        assert proc.returncode == 1 and "run_local.sh" in proc.stderr, bad


def test_run_local_limits_concurrent_jobs(tmp_path):
    # each job holds a lock file while it runs; a second holder at once would be an overlap
    body = (
        "set -o noclobber; { > lock; } 2>/dev/null || { echo overlap; exit 1; }; sleep 0.2; rm lock"
    )
    run_script(LAUNCHER, "--max-jobs-run", "1", "JOB=1:3", tmp_path / "q.JOB.log",
               "bash", "-c", body, cwd=tmp_path)  # fmt: skip
    proc = run_script(LAUNCHER, "JOB=1:3", tmp_path / "r.JOB.log", "bash", "-c", body,
                      cwd=tmp_path, check=False)  # fmt: skip
    assert proc.returncode == 1  # without the limit, the jobs overlap


def test_run_local_shows_a_single_jobs_log_on_a_terminal(tmp_path):
    # through a pseudo-terminal (util-linux's script) the job's output shows up as it runs
    command = f"{LAUNCHER} {tmp_path}/one.log bash -c 'echo first; sleep 0.3; echo second'"
    shown = run_script("script", "-qec", command, "/dev/null").stdout
    assert "first" in shown and "second" in shown and "# Ended (code 0)" in shown
    # not through a pipe, nor for arrays
    piped = run_script(LAUNCHER, tmp_path / "two.log", "echo", "hidden").stdout
    assert piped == "" and "hidden" in (tmp_path / "two.log").read_text()
    array = f"{LAUNCHER} JOB=1:2 {tmp_path}/a.JOB.log echo hidden"
    assert "hidden" not in run_script("script", "-qec", array, "/dev/null").stdout


def test_run_local_forwards_term_and_logs_it(tmp_path):
    log = tmp_path / "t.log"
    body = "trap 'echo got TERM; exit 143' TERM; echo started; sleep 30 & wait"
    proc = start_script(LAUNCHER, log, "bash", "-c", body)
    wait_for(file_has(log, "\nstarted\n"), proc, "the job")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 130 and "interrupted" in err
    text = log.read_text()
    assert "got TERM" in text and "# Ended (code 143)" in text


def test_run_parallel_keeps_the_order_limits_and_names_failures(tmp_path):
    # each command holds a lock file while it runs: with N = 1 none may overlap
    hold = "set -o noclobber; { > lock; } 2>/dev/null || exit 9; sleep 0.2; rm lock; echo $0"
    lines = "".join(f"bash -c {shlex.quote(hold)} {name}\n" for name in ("c", "a", "b"))
    run = [ROOT / "utils" / "run_parallel.sh"]
    proc = subprocess.run(run + ["1"], input=lines, text=True, cwd=tmp_path, capture_output=True)
    assert proc.returncode == 0 and proc.stdout == "c\na\nb\n"  # the order given
    # all at once: the lock is contended, and the failures are named
    proc = subprocess.run(run + ["3"], input=lines, text=True, cwd=tmp_path, capture_output=True)
    assert proc.returncode == 1 and "2 / 3 commands failed" in proc.stderr
    assert proc.stderr.count("run_parallel.sh: failed: bash -c") == 2


def map_options(conf, *options):
    """The scheduler options that the launchers' mapping gives for ``options``."""
    script = f'. {LIB}; launcher_prog=test; launcher_parse "$@" log true; ' + (
        f'launcher_map_options {conf}; echo "${{launcher_sched_command[*]}}|${{launcher_sched_args[*]}}"'
    )
    return run_script("bash", "-c", script, "map", *options, check=False)


def test_option_mapping_follows_kaldis_rules(tmp_path):
    conf = tmp_path / "q.conf"
    conf.write_text(
        textwrap.dedent(
            """\
            # a comment
            command qsub -V -cwd   # trailing comment
            option mem=* -l mem_free=$0,ram_free=$0
            option mem=0
            option num_threads=* -pe smp $0
            option num_threads=1
            default gpu=0
            option gpu=0
            option gpu=* -l gpu=$0 -q g.q
            option max_jobs_run=* -tc $0
            option queue=* -q $0
            """
        )
    )
    out = map_options(conf, "--mem", "4G", "--num-threads", "8", "--max-jobs-run=5")
    assert out.stdout.strip() == "qsub -V -cwd|-tc 5 -l mem_free=4G,ram_free=4G -pe smp 8"
    assert map_options(conf, "--num-threads", "1", "--mem", "0").stdout.strip() == "qsub -V -cwd|"
    assert map_options(conf, "--gpu", "2", "--queue", "long.q").stdout.strip() == (
        "qsub -V -cwd|-l gpu=2 -q g.q -q long.q"
    )
    bad = map_options(conf, "--colour", "red")
    assert bad.returncode == 1 and f"{conf} has no line for --colour red" in bad.stderr
    conf.write_text("option mem=* --mem $0\n")
    assert "no 'command' line" in map_options(conf).stderr
    conf.write_text("command sbatch\nmemory 4G\n")
    assert "unknown line 'memory 4G'" in map_options(conf).stderr


def test_shipped_configs_map_the_common_options():
    slurm = map_options(ROOT / "conf" / "slurm.conf", "--mem", "4G", "--time", "1:00:00",
                        "--gpu", "2", "--num-threads", "4", "--nodes", "2", "--procs-per-node", "2")  # fmt: skip
    command, args = slurm.stdout.strip().split("|")
    assert (
        command.startswith("sbatch ") and "--requeue" in command and "--signal=B:USR1@" in command
    )
    assert args.split() == [
        "--gres=gpu:2",
        "--mem",
        "4G",
        "--cpus-per-task",
        "4",
        "--time",
        "1:00:00",
    ]
    assert map_options(ROOT / "conf" / "slurm.conf").stdout.strip().endswith("|")  # gpu=0: nothing
    sge = map_options(
        ROOT / "conf" / "queue.conf", "--mem", "2G", "--gpu", "1", "--max-jobs-run", "3"
    )
    assert sge.stdout.strip().split("|")[1] == "-l gpu=1 -q g.q -tc 3 -l mem_free=2G"


FAKE_SGE = {
    # records its arguments and runs the array's tasks in the background, as one node of a Grid
    # Engine would: each task with JOB_ID and SGE_TASK_ID, again with RESTARTED=1 if it exits 99
    "qsub": r"""#!/usr/bin/env bash
echo "$*" >> "$FAKE_SGE/qsub.args"
while [ $# -gt 1 ]; do
  case $1 in
    -t) range=$2; shift 2 ;;  -o) out=$2; shift 2 ;;  -pe) shift 3 ;;
    -N|-l|-tc|-S|-q|-j|-r) shift 2 ;;  *) shift ;;
  esac
done
id=$(( $(cat "$FAKE_SGE/next" 2>/dev/null || echo 100) + 1 )); echo $id > "$FAKE_SGE/next"
for (( t = ${range%-*}; t <= ${range#*-}; t++ )); do
  (
    export JOB_ID=$id SGE_TASK_ID=$t
    while bash "$1" >> "${out//\$TASK_ID/$t}" 2>&1; [ $? = 99 ]; do export RESTARTED=1; done
  ) &
  echo $! >> "$FAKE_SGE/$id.pids"
done
echo "$id.${range}:1"
""",
    "qstat": r"""#!/usr/bin/env bash
[ "$1" = -j ] || exit 2
for pid in $(cat "$FAKE_SGE/$2.pids" 2>/dev/null); do kill -0 $pid 2>/dev/null && exit 0; done
echo "Following jobs do not exist: $2" >&2; exit 1
""",
    "qdel": '#!/usr/bin/env bash\necho "$*" >> "$FAKE_SGE/qdel.args"\n',
}


@pytest.fixture
def fake_sge(tmp_path):
    bin_dir = tmp_path / "sge-bin"
    bin_dir.mkdir()
    for name, text in FAKE_SGE.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    return {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "FAKE_SGE": str(bin_dir),
        "SCPC_POLL_MAX": "0.2",
    }


def test_queue_sh_submits_an_array_and_propagates_failures(tmp_path, fake_sge):
    queue = ROOT / "utils" / "queue.sh"
    proc = run_script(
        queue, "--mem", "2G", "--num-threads", "2", "JOB=1:3", tmp_path / "log" / "a.JOB.log",
        "bash", "-c", "echo job $SGE_TASK_ID JOB threads $OMP_NUM_THREADS; exit $((JOB == 3))",
        env=fake_sge, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"queue.sh: 1 / 3 jobs failed, log is in {tmp_path}/log/a.*.log"
    args = (tmp_path / "sge-bin" / "qsub.args").read_text().split()
    assert args[:8] == ["-V", "-cwd", "-S", "/bin/bash", "-j", "y", "-r", "y"]
    assert args[8:16] == [
        "-terse",
        "-N",
        "ja",
        "-t",
        "1-3",
        "-o",
        f"{tmp_path}/log/q/a.$TASK_ID.out",
        "-l",
    ]
    assert "-pe smp 2" in " ".join(args) and args[-1] == f"{tmp_path}/log/q/a.sh"
    for j in (1, 2, 3):
        text = (tmp_path / "log" / f"a.{j}.log").read_text()
        assert f"job {j} {j} threads 2\n" in text and f"# Ended (code {int(j == 3)})" in text
    assert (tmp_path / "log" / "q" / "a.jobid").read_text().strip() == "101"


def test_queue_sh_reschedules_a_job_stopped_by_usr1(tmp_path, fake_sge):
    # the command asks its job script for SIGUSR1 (as Grid Engine's notification would) the first
    # time, and exits 138 on it like scpc-train after saving; the job script exits 99 and the
    # job runs again with RESTARTED=1, appending to its log
    body = (
        'if [ -z "${RESTARTED:-}" ]; then trap "echo saved; exit 138" USR1; kill -USR1 $PPID; '
        "sleep 20 & wait; fi; echo finished"
    )
    run_script(ROOT / "utils" / "queue.sh", tmp_path / "r.log", "bash", "-c", body,
               env=fake_sge, cwd=tmp_path)  # fmt: skip
    text = (tmp_path / "r.log").read_text()
    assert "saved\n# Accounting" in text and "# Ended (code 138)" in text
    assert "# Requeued at" in text and "# Restarted at" in text
    assert text.rstrip().endswith("# Ended (code 0) at " + text.rstrip().rsplit(" at ", 1)[1])
    assert "finished" in text.split("# Restarted at")[1]


@pytest.mark.slow
def test_a_ddp_job_under_torchrun_is_stopped_by_usr1_and_resumes(tmp_path, fake_sge, feats):  # noqa: F811
    # queue.sh --procs-per-node 2 runs scpc-train under torchrun; SIGUSR1 to the job script goes
    # to both workers (torchrun itself would die of it), they save and stop, the job reruns
    cfg = write_config(
        tmp_path / "model.yaml", max_epochs=3, batch_size=2, checkpoint_every_steps=99
    )
    args = ["--procs-per-node", "2", "--num-threads", "1", tmp_path / "log" / "train.log"]
    launcher = start_script(QUEUE, *args, "scpc-train", "--quiet", cfg, *feats, env=fake_sge)
    wait_for(training_started(tmp_path), launcher, "training")
    subprocess.run(["pkill", "-USR1", "-f", f"bash {tmp_path}/log/q/train.sh"], check=True)
    _, err = launcher.communicate(timeout=300)
    log = (tmp_path / "log" / "train.log").read_text()
    assert launcher.returncode == 0, err + log
    assert "# Requeued at" in log and "# Restarted at" in log
    train_log = (tmp_path / "train.log").read_text()
    stopped = train_log.split("SIGUSR1 received: stopped at ")[1].split(";")[0]
    assert f"resuming at {stopped}" in train_log and "2 process(es)" in train_log
    state = torch.load(tmp_path / "last.ckpt", weights_only=True)
    assert state["world_size"] == 2 and state["progress"]["epoch"] == 3


@pytest.mark.slow
def test_queue_sh_counts_a_vanished_job_as_failed(tmp_path, fake_sge):
    # the job leaves the queue without an exit code, as when Grid Engine kills it
    proc = run_script(ROOT / "utils" / "queue.sh", tmp_path / "k.log", "bash", "-c",
                      "kill -KILL $PPID", env=fake_sge, cwd=tmp_path, check=False)  # fmt: skip
    assert proc.returncode == 1
    assert "job 1 of Grid Engine job 101 ended without an exit code" in proc.stderr
    assert "1 / 1 jobs failed" in proc.stderr


def test_queue_sh_refuses_several_nodes(tmp_path, fake_sge):
    proc = run_script(ROOT / "utils" / "queue.sh", "--nodes", "2", tmp_path / "n.log", "true",
                      env=fake_sge, check=False)  # fmt: skip
    assert proc.returncode == 1 and "--nodes must be 1" in proc.stderr


def test_cmd_sh_picks_the_launchers():
    def cmds(cluster):
        script = ". ./cmd.sh && echo $train_cmd && echo $cuda_cmd && echo $decode_cmd"
        return run_script("bash", "-c", script, env={"SCPC_CLUSTER": cluster}, check=False)

    assert cmds("local").stdout.split("\n")[:3] == ["utils/run_local.sh"] * 3
    assert all(c.startswith("utils/slurm.sh ") for c in cmds("slurm").stdout.split("\n")[:3])
    assert all(c.startswith("utils/queue.sh ") for c in cmds("sge").stdout.split("\n")[:3])
    bad = cmds("pbs")
    assert bad.returncode == 1 and "SCPC_CLUSTER must be local, slurm or sge" in bad.stderr
    for launcher in ("run_local.sh", "slurm.sh", "queue.sh"):
        assert os.access(ROOT / "utils" / launcher, os.X_OK)


def test_slurm_environment_gives_ddp_variables_to_srun_tasks():
    env = {
        "SLURM_PROCID": "5",
        "SLURM_STEP_NUM_TASKS": "8",
        "SLURM_LOCALID": "1",
        "SLURM_STEP_NODELIST": "gpu[07-08,12],cpu1",
        "SLURM_JOB_ID": "123456",
    }
    assert slurm_environment(env) == {
        "RANK": "5",
        "WORLD_SIZE": "8",
        "LOCAL_RANK": "1",
        "MASTER_ADDR": "gpu07",
        "MASTER_PORT": str(20000 + 123456 % 20000),
    }
    # the launcher's (or the user's) MASTER_* win; torchrun's variables win over Slurm's
    env.update(MASTER_ADDR="10.0.0.1", MASTER_PORT="29500")
    assert slurm_environment(env)["MASTER_ADDR"] == "10.0.0.1"
    assert slurm_environment(env)["MASTER_PORT"] == "29500"
    assert slurm_environment(dict(env, WORLD_SIZE="2")) == {}
    # a batch script's own shell, or a one-task step, is one process
    assert slurm_environment({"SLURM_JOB_ID": "1", "SLURM_NTASKS": "8"}) == {}
    assert slurm_environment(dict(env, SLURM_STEP_NUM_TASKS="1")) == {}


def test_first_host_of_slurm_node_lists():
    assert first_host("node17") == "node17"
    assert first_host("gpu[003-010]") == "gpu003"
    assert first_host("a[1,5-7],b[2]") == "a1"
    assert first_host("c1,c2") == "c1"
    with pytest.raises(ScpcError, match="cannot read the Slurm node list"):
        first_host("")
