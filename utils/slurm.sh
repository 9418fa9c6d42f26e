#!/usr/bin/env bash
# Kaldi's slurm.pl: runs a command, or an array of jobs, as one Slurm job array, and waits.
#
# Usage: utils/slurm.sh [options] [JOB=1:N] <log-file> <command> [<arg>...]
#   e.g. utils/slurm.sh --mem 4G JOB=1:40 exp/log/feats.JOB.log scpc-feats --job JOB --num-jobs 40 in out
#        utils/slurm.sh --gpu 4 --nodes 2 --procs-per-node 4 --time 48:00:00 exp/x/log/train.log \
#          scpc-train exp/x/model.yaml train_feats valid_feats
#
# The interface, the JOB substitution, the logs and the quoting rules are those of every
# launcher (utils/launcher_lib.sh). The options are mapped onto sbatch options by --config
# (default conf/slurm.conf, Kaldi's format): --mem, --time, --gpu, --num-threads and any other
# --name VALUE the config has a line for. --max-jobs-run N becomes the array's %N;
# --nodes M --procs-per-node P run each job as M x P tasks started by srun (DDP: scpc-train
# takes its rank from SLURM_PROCID, its world from SLURM_STEP_NUM_TASKS).
#
# The job script, its Slurm job id and Slurm's own output of each job go to q/ beside the
# logs. The launcher polls until every job has ended: a job requeued (preemption, or SIGUSR1
# before the time limit after scpc-train saved its state) is waited for until it ends for
# good; a job that leaves the queue without an exit code (cancelled, killed for memory or
# time) counts as failed. An interrupt or TERM cancels the jobs. SCPC_POLL_MAX (seconds,
# default 30) caps the wait between two checks.
set -uo pipefail

launcher_prog=slurm.sh
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$root/utils/launcher_lib.sh"
launcher_parse "$@"
launcher_use_scheduler "$root/conf/slurm.conf" Slurm squeue scancel scontrol
launcher_prepare_submission
qdir=$launcher_qdir name=$launcher_qname status_dir=$launcher_status_dir

array=$launcher_first-$launcher_last
[ -z "${launcher_opts[max_jobs_run]-}" ] || array+=%${launcher_opts[max_jobs_run]}
submit=("${launcher_sched_command[@]}" --parsable --job-name "$name" --array "$array"
        --output "$qdir/$name.%a.out" --open-mode append "${launcher_sched_args[@]}")
procs=$(launcher_procs)
[ "$procs" -eq 1 ] ||
  submit+=(--nodes "${launcher_opts[nodes]:-1}" --ntasks-per-node "${launcher_opts[procs_per_node]:-1}")
script=$qdir/$name.sh
launcher_write_job_script "$script" "$status_dir" slurm SLURM_ARRAY_TASK_ID \
  "submitted by utils/slurm.sh as: $(printf '%q ' "${submit[@]}")$script"

jobid=$("${submit[@]}" "$script") || launcher_die "$(printf '%q ' "${submit[@]}") $script failed"
jobid=${jobid%%;*}
echo "$jobid" > "$qdir/$name.jobid"
cancel() {
  scancel "$jobid" 2>/dev/null
  echo "$launcher_prog: interrupted, cancelled Slurm job $jobid; logs in $launcher_log" >&2
  exit 130
}
trap cancel INT TERM

# in_queue: 0 while Slurm knows the job, 1 once it does not, 2 when squeue cannot tell
in_queue() {
  local out
  if out=$(squeue -h -j "$jobid" -o %i 2>&1); then
    [ -n "$out" ] && return 0 || return 1
  fi
  [[ $out == *"Invalid job id"* ]] && return 1 || return 2
}
launcher_show_log $$
launcher_wait "$status_dir" in_queue "Slurm job $jobid" "$qdir/$name.%d.out"
launcher_end_log
launcher_report_failures "$status_dir"
