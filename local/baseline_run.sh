#!/usr/bin/env bash
# CTC baseline ASR on frozen representations (the context-size paper's baseline).
#
#   local/baseline_run.sh --model cpc.mini-fbank                  # mini corpus, offline
#   local/baseline_run.sh --upstream fbank                  # the 80-dim log filter-bank row
#   local/baseline_run.sh --model cpc.small --set real --pca 32 --lm-order 4 --nj 8
#
# Stages (each skips finished work; an interrupted run continues where it stopped):
#   0 data: the mini corpus, or LibriSpeech train-clean-100, dev-clean/other, test-clean/other
#     and librispeech-lm-norm.txt.gz (the BPE and LM text) downloaded and prepared
#   1 representations of every part (steps/make_reps.sh: --nj scpc-a2r jobs; --pca K applies the
#     model's pca_K.pt) into <upstream dir>/reps/{full|pca_K}/<part>/ (with --rep-format kaldi
#     Kaldi tables, <upstream dir>/reps/{full|pca_K}.kaldi/<part>/feats.scp)
#   2 SentencePiece BPE of --vocab-size pieces on the training transcripts (mini) or the
#     LibriSpeech LM corpus (real); 3 MVN statistics of the training representations
#   4 short phase: a 2-layer BiLSTM CTC on 3-frame stacks of the N shortest utterances
#   5 full phase: every utterance with SpecAugment, from the short phase's best model
#   6 word n-gram LM of --lm-order (0: none): KenLM's lmplz when installed, else scpc's
#     (real: KenLM on the LM corpus; scpc's is trained on the transcripts of train-clean-100)
#   7 decoding of every set: greedy, beam search of width --beam, and beam search with the LM
#     (weight and word bonus tuned on dev); the WER table goes to stdout
# The upstream is exp/<model>/version_<N>/best.ckpt (from run.sh), or with --upstream fbank (or mfcc) a
# baseline made once with scpc-init under exp/baselines/fbank/. Results go to
#   <upstream dir>/baseline/<name>/{config.yaml, bpe.model, mvn.pt, short/, full/, train.log,
#                                   metrics.csv, curves.png, decode/}
# where <name> is full or pca<K>, plus .v<V> when --vocab-size is given (or --name). Training
# runs through $cuda_cmd and decoding through $decode_cmd (cmd.sh), their logs in <name>/log/.
set -euo pipefail
cd "$(dirname "$0")/.."

model=cpc.mini-fbank  # exp/<model>/version_<version>/best.ckpt (from run.sh)
version=0            # experiment version
upstream=            # a baseline upstream instead of the model: fbank (80-dim log filter banks) or mfcc
pca=                 # use the model's pca_<K>.pt projection (run.sh stage 4)
rep_format=pt        # how stage 1 stores representations: pt (a file each) or kaldi (feats.scp)
vocab_size=          # BPE pieces (default: the config's bpe.vocab_size)
lm_order=            # word n-gram order, 0 for no LM (default: the config's lm.order)
beam=                # beam width (default: the config's decode.beam)
nj=2                 # extraction and decoding processes
set=mini             # mini (the committed corpus, offline) or real (LibriSpeech)
baseline_config=     # default: conf/baseline.mini.yaml (--set mini) or conf/baseline.yaml
name=                # baseline directory name (default: full or pca<K>, plus .v<V> with --vocab-size)
libri_dir=           # real: an existing LibriSpeech directory (with dev-clean/ ...); empty: download
lm_text=             # real: the BPE and LM text (default: librispeech-lm-norm.txt.gz, downloaded)
device=auto          # cpu, cuda[:N] or auto
ngpu=0               # GPUs asked of the scheduler for training by $cuda_cmd (cmd.sh)
stage=0
stop_stage=100
datadir=data         # where data dirs are
expdir=exp           # where experiments are
. utils/parse_options.sh
[ $# -eq 0 ] || { echo "$0: unexpected argument '$1' (see --help)" >&2; exit 1; }

utils/setup_venv.sh >&2
. ./path.sh
. ./cmd.sh

case $set in
  mini) data=$datadir/mini; train=train; dev=dev; evals="test"
        config=${baseline_config:-conf/baseline.mini.yaml} ;;
  real) data=$datadir/librispeech; train=train_clean_100; dev=dev_clean
        evals="dev_other test_clean test_other"
        config=${baseline_config:-conf/baseline.yaml} ;;
  *) echo "$0: --set must be mini or real, not '$set'" >&2; exit 1 ;;
esac
[ -f $config ] || { echo "$0: no $config" >&2; exit 1; }

. local/upstream.sh
select_upstream "$upstream" $expdir $model $version  # sets base and ckpt
if [ -n "$upstream" ]; then
  [ -z "$pca" ] || { echo "$0: --pca needs a model, not --upstream" >&2; exit 1; }
  reference_checkpoint $upstream $ckpt
fi
pca_opt=(); rep_name=full
if [ -n "$pca" ]; then
  [ -f $base/pca_$pca.pt ] ||
    { echo "$0: no $base/pca_$pca.pt; run ./run.sh --stage 4 --pca-dims $pca" >&2; exit 1; }
  pca_opt=(--pca-file $base/pca_$pca.pt); rep_name=pca$pca
fi
case $rep_format in
  pt) reps=$base/reps/$rep_name ;;
  kaldi) reps=$base/reps/$rep_name.kaldi; pca_opt+=(--format kaldi) ;;
  *) echo "$0: --rep-format must be pt or kaldi, not '$rep_format'" >&2; exit 1 ;;
esac
if [ -z "$name" ]; then name=$rep_name; [ -z "$vocab_size" ] || name=$name.v$vocab_size; fi
bl=$base/baseline/$name

# the config is frozen on first use; a later run may change only how it decodes
overrides=()
[ -z "$vocab_size" ] || overrides+=(-o bpe.vocab_size=$vocab_size)
[ -z "$lm_order" ] || overrides+=(-o lm.order=$lm_order)
[ -z "$beam" ] || overrides+=(-o decode.beam=$beam)
scpc-baseline init $bl --config $config "${overrides[@]}"
lm_order=$(scpc-baseline get $bl lm.order)
beam=$(scpc-baseline get $bl decode.beam)
echo "$0: CTC baseline of $ckpt${pca:+ (PCA $pca)} on $set -> $bl" >&2

# the BPE text, and the LM's: the training transcripts (mini), or the LM corpus (real)
if [ $set = mini ]; then text=$data/$train/text; kaldi_text=--kaldi
else text=${lm_text:-$data/download/librispeech-lm-norm.txt.gz}; kaldi_text=; fi
if [ $stage -le 0 ] && [ $stop_stage -ge 0 ]; then
  echo "Stage 0: data ($set)" >&2
  if [ $set = mini ]; then
    [ -f $data/.complete ] || local/mini_data_prep.sh $data >&2
  else
    parts="train-clean-100 dev-clean dev-other test-clean test-other"
    if [ -z "$libri_dir" ]; then
      libri_dir=$data/download/LibriSpeech
      local/download_librispeech.sh $data/download $parts >&2
    fi
    # the BPE text, whether or not there is an LM (the reference needed it but fetched it only for one)
    [ -n "$lm_text" ] || local/download_librispeech.sh $data/download librispeech-lm-norm.txt.gz >&2
    for part in $parts; do
      [ -f $data/${part//-/_}/.complete ] && continue
      local/librispeech_data_prep.sh $libri_dir/$part $data/${part//-/_} >&2
      touch $data/${part//-/_}/.complete
    done
  fi
fi

if [ $stage -le 1 ] && [ $stop_stage -ge 1 ]; then
  echo "Stage 1: representations of $train $dev $evals" >&2
  for part in $train $dev $evals; do
    [ -f $reps/$part/.complete ] && continue
    steps/make_reps.sh --nj $nj --cmd "$train_cmd" --a2r-opts "--device $device ${pca_opt[*]}" \
      $data/$part/wav.scp $ckpt $reps/$part >&2
    touch $reps/$part/.complete
  done
fi

if [ $stage -le 2 ] && [ $stop_stage -ge 2 ]; then
  echo "Stage 2: BPE" >&2
  [ -f $bl/bpe.model ] || scpc-baseline bpe $bl $kaldi_text $text
fi

if [ $stage -le 3 ] && [ $stop_stage -ge 3 ]; then
  echo "Stage 3: MVN statistics of $train" >&2
  [ -f $bl/mvn.pt ] || scpc-baseline stats $bl $reps/$train $data/$train
fi

for phase in short full; do
  s=4; [ $phase = short ] || s=5
  if [ $stage -le $s ] && [ $stop_stage -ge $s ]; then
    echo "Stage $s: $phase phase" >&2
    if [ ! -f $bl/$phase/.complete ]; then
      echo "log: $bl/log/train.$phase.log" >&2
      $cuda_cmd --gpu $ngpu $bl/log/train.$phase.log \
        scpc-baseline train $bl --phase $phase --reps $reps --data $data --train $train --dev $dev \
          --device $device ||
        { echo "$0: training failed or stopped; see $bl/log/train.$phase.log (run again to resume)" >&2; exit 1; }
    fi
    touch $bl/$phase/.complete
  fi
done

lm_opt=()
if [ $lm_order -gt 0 ]; then
  lm=$data/lm/lm.$lm_order.arpa
  if [ $set = real ] && ! command -v lmplz >/dev/null; then
    # scpc's n-gram holds every n-gram in memory: the transcripts, not the 800M-word corpus
    echo "$0: KenLM's lmplz is not installed: the LM is trained on the $train transcripts" >&2
    lm=$data/lm/lm.$lm_order.$train.arpa; text=$data/$train/text; kaldi_text=--kaldi
  fi
  lm_opt=(--lm $lm)
  if [ $stage -le 6 ] && [ $stop_stage -ge 6 ]; then
    echo "Stage 6: $lm_order-gram LM" >&2
    [ -f $lm ] || scpc-baseline lm $lm --order $lm_order $kaldi_text $text
  fi
fi

if [ $stage -le 7 ] && [ $stop_stage -ge 7 ]; then
  echo "Stage 7: decoding $dev $evals (beam $beam${lm:+, $lm_order-gram LM})" >&2
  decode=(scpc-baseline decode $bl --reps $reps --data $data --dev $dev --eval $evals "${lm_opt[@]}"
          --beam $beam --device $device)
  $decode_cmd --num-threads $nj $bl/log/decode.log "${decode[@]}" --nj $nj ||
    { echo "$0: decoding failed; see $bl/log/decode.log" >&2; exit 1; }
  "${decode[@]}"  # decoded: prints the table
fi
