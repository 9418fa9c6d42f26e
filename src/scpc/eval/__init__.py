"""Evaluation: ZeroSpeech ABX (:mod:`scpc.eval.abx`), and the reference scorer wrapper."""
