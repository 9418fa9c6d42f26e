"""Data preparation: Kaldi data dirs, corpora, alignments, downloads."""
