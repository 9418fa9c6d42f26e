"""Network pieces shared by the SUPERB probes and the CTC baseline: utterance-level heads
(``heads``), CTC heads and loss (``ctc``) and SpecAugment (``specaug``). Masks and
per-utterance CMVN are :mod:`scpc.masks`, used by every layer of the package."""
