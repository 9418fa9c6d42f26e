#!/usr/bin/env bash
# Kaldi's run.pl for this machine: runs a command, or an array of jobs in parallel, locally.
#
# Usage: utils/run_local.sh [options] [JOB=1:N] <log-file> <command> [<arg>...]
#   e.g. utils/run_local.sh JOB=1:4 exp/log/feats.JOB.log scpc-feats --job JOB --num-jobs 4 in out
#
# The interface, the JOB substitution, the logs, the quoting rules and the options are those of
# every launcher (utils/launcher_lib.sh). Here --max-jobs-run N limits the jobs running at once,
# --num-threads N sets OMP_NUM_THREADS, --procs-per-node P runs each job as P processes under
# torchrun --standalone (one distributed job), and --mem, --gpu, --time, --config and any
# other option are accepted and ignored, so that cmd.sh can switch launchers. On failure it
# says "run_local.sh: F / N jobs failed, log is in <log>" on stderr and exits 1. An interrupt
# or TERM stops every job; their logs say so. A SIGKILL of this script stops scpc's commands
# too (they watch SCPC_LAUNCHER_PID).
set -uo pipefail

launcher_prog=run_local.sh
. "$(dirname "${BASH_SOURCE[0]}")/launcher_lib.sh"
launcher_parse "$@"
[ "${launcher_opts[nodes]:-1}" -eq 1 ] || launcher_die "one machine only: --nodes must be 1 (use utils/slurm.sh)"
max_jobs_run=${launcher_opts[max_jobs_run]:-0}

exec 3<&0
status_dir=$(mktemp -d "${TMPDIR:-/tmp}/run_local.XXXXXX")
trap 'rm -rf "$status_dir"' EXIT
interrupted() {
  # shellcheck disable=SC2046  # one argument per job id
  kill $(jobs -rp) 2>/dev/null
  wait
  echo "$launcher_prog: interrupted, logs in $launcher_log" >&2
  exit 130
}
trap interrupted INT TERM

# every scpc command watches this pid and stops when it is gone (scpc.processes): a SIGKILL
# of this script, which cannot be passed on, still ends its jobs
export SCPC_LAUNCHER_PID=$$
pids=()
for (( n = launcher_first; n <= launcher_last; n++ )); do
  if [ "$max_jobs_run" -gt 0 ]; then
    while [ "$(jobs -rp | wc -l)" -ge "$max_jobs_run" ]; do wait -n; done
  fi
  launcher_run_job "$n" "$status_dir" &
  pids+=($!)
done
launcher_show_log "${pids[0]}"
wait "${pids[@]}"
launcher_end_log
launcher_report_failures "$status_dir"
