"""The CTC baseline ASR on frozen representations (``local/baseline_run.sh``, ``scpc-baseline``).

As the context-size paper's baseline: SentencePiece BPE targets, mean-variance normalisation
with training-set statistics, 3-frame stacking, a 2-layer BiLSTM with CTC trained in two
phases (the shortest utterances first, then all of them with SpecAugment), greedy and beam
search decoding with an optional word n-gram LM whose weight and word bonus are tuned on dev.

``config`` holds every default, ``bpe`` the tokenizer, ``data`` representation sets, MVN
statistics and batches, ``specaug`` its SpecAugment policy (over :mod:`scpc.nn.specaug`), ``model`` the network, ``train``
the two-phase trainer, ``lm`` the word n-gram, and ``decode`` decoding, tuning and the WER
table.
"""
