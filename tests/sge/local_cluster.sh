#!/usr/bin/env bash
# A one-node Grid Engine on this machine, for the tests: Debian's gridengine-master and
# gridengine-exec (configured at install time with this host as master, cell "default"), given
# an execution host, a queue all.q with one slot per CPU, the parallel environment smp, jobs
# from root allowed, a one-second scheduler interval and two-second load reports (so that a
# rescheduled job starts again within seconds).
#
# Usage: tests/sge/local_cluster.sh start   # prints "export SGE_ROOT=... SGE_CELL=..."
#        tests/sge/local_cluster.sh stop
# This rewrites that Grid Engine's configuration: only for a machine with no other use of it
# (CI); the tests run it only with SCPC_TEST_SGE=1.
set -euo pipefail
prog=local_cluster.sh
export SGE_ROOT=/var/lib/gridengine SGE_CELL=default
common=$SGE_ROOT/$SGE_CELL/common
case ${1:-} in
  stop)
    pkill -x sge_execd || true; pkill -x sge_qmaster || true
    for _ in $(seq 100); do
      pgrep -x sge_execd > /dev/null || pgrep -x sge_qmaster > /dev/null || exit 0
      sleep 0.1
    done
    echo "$prog: Grid Engine's daemons did not stop" >&2; exit 1 ;;
  start) ;;
  *) echo "Usage: $prog start|stop" >&2; exit 1 ;;
esac
[ "$(id -u)" -eq 0 ] || { echo "$prog: must run as root" >&2; exit 1; }
for tool in sge_qmaster sge_execd qconf qsub; do
  command -v $tool > /dev/null || [ -x /usr/sbin/$tool ] ||
    { echo "$prog: $tool not found (apt-get install gridengine-{master,exec,client})" >&2; exit 1; }
done
[ -f $common/act_qmaster ] ||
  { echo "$prog: no $common/act_qmaster: gridengine-master is not configured" >&2; exit 1; }
host=$(cat $common/act_qmaster)
# where 127.0.0.1 reverse-resolves to "localhost", Grid Engine must know it is this host
echo "$host localhost" > $common/host_aliases

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
wait_for() {  # wait_for WHAT COMMAND...: retries COMMAND for up to 30 s
  local what=$1; shift
  for _ in $(seq 150); do "$@" > /dev/null 2>&1 && return 0; sleep 0.2; done
  echo "$prog: $what did not come up (see /var/spool/gridengine/qmaster/messages)" >&2; exit 1
}

pgrep -x sge_qmaster > /dev/null || /usr/sbin/sge_qmaster
wait_for "sge_qmaster" qconf -sh
qconf -sel 2>/dev/null | grep -qx "$host" || {
  cat > "$work/exechost" <<HOST
hostname $host
load_scaling NONE
complex_values NONE
user_lists NONE
xuser_lists NONE
projects NONE
xprojects NONE
usage_scaling NONE
report_variables NONE
HOST
  qconf -Ae "$work/exechost"
}
qconf -ss 2>/dev/null | grep -qx "$host" || qconf -as "$host"
qconf -spl 2>/dev/null | grep -qx smp || {
  cat > "$work/pe" <<'PE'
pe_name smp
slots 999
user_lists NONE
xuser_lists NONE
start_proc_args NONE
stop_proc_args NONE
allocation_rule $pe_slots
control_slaves FALSE
job_is_first_task TRUE
urgency_slots min
accounting_summary FALSE
qsort_args NONE
PE
  qconf -Ap "$work/pe"
}
cpus=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)  # the machine's, not this shell's thread share
qconf -sql 2>/dev/null | grep -qx all.q || {
  qconf -sq | sed -e "s/^qname .*/qname all.q/" -e "s/^hostlist .*/hostlist $host/" \
    -e "s/^slots .*/slots $cpus/" -e "s/^pe_list .*/pe_list smp/" \
    -e "s/^shell_start_mode .*/shell_start_mode unix_behavior/" > "$work/queue"
  qconf -Aq "$work/queue"
}
mkdir -p "$work/conf"
qconf -sconf global | sed -e 's/^min_uid .*/min_uid 0/' -e 's/^min_gid .*/min_gid 0/' \
  -e 's/^load_report_time .*/load_report_time 00:00:02/' > "$work/conf/global"
(cd "$work/conf" && qconf -Mconf global > /dev/null)  # the file's name is the configuration's
qconf -ssconf | sed 's/^schedule_interval .*/schedule_interval 0:0:1/' > "$work/sched"
qconf -Msconf "$work/sched" > /dev/null
pgrep -x sge_execd > /dev/null || /usr/sbin/sge_execd
# the queue instance is usable once the execution daemon reports its load (no "a"/"u" state)
wait_for "sge_execd" bash -c "qstat -f -q all.q | grep -E '^all.q@' | awk '{exit (NF == 5 ? 0 : 1)}'"
echo "export SGE_ROOT=$SGE_ROOT SGE_CELL=$SGE_CELL"
