# shellcheck shell=bash
# Sourced by recipes: how jobs are launched, the only file that knows about the cluster.
# Every launcher takes Kaldi's run.pl interface (see utils/launcher_lib.sh):
#   $cmd [--mem 4G] [--num-threads N] [--gpu G] [--time 1:00:00] [--max-jobs-run N] \
#        [--nodes M --procs-per-node P] [JOB=1:N] LOG COMMAND...
# Pick a backend with SCPC_CLUSTER=local|slurm|sge in the environment, or edit the lines below.
# Slurm and Grid Engine options are mapped through conf/slurm.conf and conf/queue.conf.
case ${SCPC_CLUSTER:-local} in
  local)  # this machine; resource options are ignored, --num-threads sets OMP_NUM_THREADS
    export train_cmd="utils/run_local.sh"   # data preparation, features, CPU training
    export cuda_cmd="utils/run_local.sh"    # GPU jobs (pre-training, probes)
    export decode_cmd="utils/run_local.sh"  # decoding and scoring
    ;;
  slurm)  # the recipes add --gpu G (per node), --nodes and --procs-per-node to cuda_cmd
    export train_cmd="utils/slurm.sh --mem 4G --time 4:00:00"
    export cuda_cmd="utils/slurm.sh --mem 32G --time 48:00:00"
    export decode_cmd="utils/slurm.sh --mem 8G --time 4:00:00"
    ;;
  sge)
    export train_cmd="utils/queue.sh --mem 4G"
    export cuda_cmd="utils/queue.sh --mem 32G"
    export decode_cmd="utils/queue.sh --mem 8G"
    ;;
  *) echo "cmd.sh: SCPC_CLUSTER must be local, slurm or sge, not '$SCPC_CLUSTER'" >&2; return 1 ;;
esac
