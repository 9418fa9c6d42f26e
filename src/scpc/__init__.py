"""scpc: Kaldi-style recipes for self-supervised speech representation learning."""

__version__ = "0.1.0"
