#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for the tests: munged, slurmctld and slurmd with a
# generated configuration, all state under one directory, nothing under /etc touched. Jobs go
# to the partition "debug"; a job in "urgent" preempts them: SIGTERM, SIGKILL 10 s later, and
# the job is requeued (PreemptMode=REQUEUE).
#
# Usage: tests/slurm/local_cluster.sh start <dir>   # prints "export SLURM_CONF=<dir>/slurm.conf"
#        tests/slurm/local_cluster.sh stop <dir>
# Needs root (slurmd runs jobs as their submitter) and Debian's slurm-wlm and munge packages.
set -euo pipefail
prog=local_cluster.sh
[ $# -eq 2 ] || { echo "Usage: $prog start|stop <dir>" >&2; exit 1; }
action=$1
mkdir -p "$2"
dir=$(cd "$2" && pwd)

stop() {
  for name in slurmd slurmctld munged; do
    [ -f "$dir/$name.pid" ] || continue
    pid=$(cat "$dir/$name.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    rm -f "$dir/$name.pid"
  done
}

case $action in
  stop) stop; exit 0 ;;
  start) ;;
  *) echo "$prog: unknown action '$action' (start or stop)" >&2; exit 1 ;;
esac

for tool in munged slurmctld slurmd sbatch scontrol; do
  command -v $tool > /dev/null || { echo "$prog: $tool not found (apt-get install slurm-wlm munge)" >&2; exit 1; }
done
[ "$(id -u)" -eq 0 ] || { echo "$prog: slurmd must run as root" >&2; exit 1; }
stop

host=$(hostname -s)
cpus=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)  # the machine's, not this shell's thread share
mem_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 512 ))
mkdir -p "$dir/state" "$dir/spool" "$dir/munge"
chmod 700 "$dir/munge"
if [ ! -f "$dir/munge/munge.key" ]; then
  dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
  chmod 400 "$dir/munge/munge.key"
fi

munged --force --key-file "$dir/munge/munge.key" --socket "$dir/munge/munge.socket" \
  --pid-file "$dir/munged.pid" --log-file "$dir/munged.log" --seed-file "$dir/munge/seed"

cat > "$dir/slurm.conf" <<CONF
ClusterName=scpc-test
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
SlurmctldPort=${SCPC_SLURMCTLD_PORT:-16817}
SlurmdPort=${SCPC_SLURMD_PORT:-16818}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
ReturnToService=2
MpiDefault=none
JobRequeue=1
KillWait=10
MinJobAge=60
SlurmctldTimeout=30
SlurmdTimeout=30
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
NodeName=$host CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO PriorityTier=1
PartitionName=urgent Nodes=$host MaxTime=INFINITE State=UP OverSubscribe=NO PriorityTier=2
CONF
export SLURM_CONF=$dir/slurm.conf
slurmctld -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF"
for _ in $(seq 100); do
  if sinfo -h -o %t 2>/dev/null | grep -q -E '^(idle|mix|alloc)'; then
    echo "export SLURM_CONF=$SLURM_CONF"
    exit 0
  fi
  sleep 0.2
done
echo "$prog: the node did not come up; logs in $dir/slurmctld.log and $dir/slurmd.log" >&2
sinfo >&2 || true
exit 1
