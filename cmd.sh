# Sourced by recipes: how jobs are launched. Every launcher takes Kaldi's run.pl interface,
#   $cmd [--mem 4G] [--num-threads N] [--gpu 1] [--time 1:00:00] [JOB=1:N] LOG COMMAND...
# and the defaults run everything on this machine (utils/run_local.sh ignores the resource
# options, except --num-threads, which sets OMP_NUM_THREADS).
export train_cmd="utils/run_local.sh"   # data preparation, features, CPU training
export cuda_cmd="utils/run_local.sh"    # GPU jobs (pre-training, probes)
export decode_cmd="utils/run_local.sh"  # decoding and scoring

# On a Slurm cluster (a Slurm launcher is planned; it is not in this repository yet):
# export train_cmd="utils/slurm.sh --mem 4G --time 4:00:00"
# export cuda_cmd="utils/slurm.sh --gpu 1 --mem 16G --time 48:00:00"
# export decode_cmd="utils/slurm.sh --mem 8G"
