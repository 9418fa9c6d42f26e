#!/usr/bin/env bash
# Kaldi's queue.pl: runs a command, or an array of jobs, as one Grid Engine (SGE, Son of Grid
# Engine, UGE) array job, and waits.
#
# Usage: utils/queue.sh [options] [JOB=1:N] <log-file> <command> [<arg>...]
#   e.g. utils/queue.sh --mem 4G JOB=1:40 exp/log/feats.JOB.log scpc-feats --job JOB --num-jobs 40 in out
#
# The interface, the JOB substitution, the logs and the quoting rules are those of every
# launcher (utils/launcher_lib.sh). The options are mapped onto qsub options by --config
# (default conf/queue.conf, Kaldi's format): --mem, --time, --gpu, --num-threads,
# --max-jobs-run and any other --name VALUE the config has a line for. --procs-per-node P runs
# each job as P processes under torchrun --standalone on its node (ask for the slots with
# --num-threads or your site's parallel environment); Grid Engine jobs span one node.
#
# The job script, its job id and Grid Engine's own output of each job go to q/ beside the logs.
# The launcher polls (qstat -j) until every job has ended; a job that ends with code 138 after
# SIGUSR1 exits 99, which Grid Engine answers by rescheduling it; a job that leaves the queue
# without an exit code counts as failed. An interrupt or TERM deletes the jobs (qdel).
# SCPC_POLL_MAX (seconds, default 30) caps the wait between two checks.
set -uo pipefail

launcher_prog=queue.sh
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$root/utils/launcher_lib.sh"
launcher_parse "$@"
[ "${launcher_opts[nodes]:-1}" -eq 1 ] || launcher_die "Grid Engine jobs span one node: --nodes must be 1 (use utils/slurm.sh)"
launcher_use_scheduler "$root/conf/queue.conf" "Grid Engine" qstat qdel
launcher_prepare_submission
qdir=$launcher_qdir name=$launcher_qname status_dir=$launcher_status_dir

# Grid Engine names a job after its script and rejects names starting with a digit
submit=("${launcher_sched_command[@]}" -terse -N "j$name" -t "$launcher_first-$launcher_last"
        -o "$qdir/$name.\$TASK_ID.out" "${launcher_sched_args[@]}")
script=$qdir/$name.sh
launcher_write_job_script "$script" "$status_dir" sge SGE_TASK_ID \
  "submitted by utils/queue.sh as: $(printf '%q ' "${submit[@]}")$script"

jobid=$("${submit[@]}" "$script") || launcher_die "$(printf '%q ' "${submit[@]}") $script failed"
jobid=${jobid%%.*}  # -terse prints 123.1-4:1 for an array
echo "$jobid" > "$qdir/$name.jobid"
cancel() {
  qdel "$jobid" > /dev/null 2>&1
  echo "$launcher_prog: interrupted, deleted Grid Engine job $jobid; logs in $launcher_log" >&2
  exit 130
}
trap cancel INT TERM

# in_queue: 0 while Grid Engine knows the job, 1 once it does not (qstat -j fails then)
in_queue() { qstat -j "$jobid" > /dev/null 2>&1; }
launcher_show_log $$
launcher_wait "$status_dir" in_queue "Grid Engine job $jobid" "$qdir/$name.%d.out"
launcher_end_log
launcher_report_failures "$status_dir"
