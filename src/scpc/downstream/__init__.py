"""SUPERB-style probing of scpc checkpoints: a frozen (or fine-tuned) upstream, a learnable
weighted sum of its layers, and a task's small downstream head (``scpc-superb``).

``config`` holds every default of a probe config, ``task`` the contract between the trainer
and the tasks, ``tasks`` the registry, ``upstream`` the upstream and featurizer, ``probe`` the
probe and its checkpoint, ``data`` audio, batching and the frozen-output cache, ``runner``
batching and evaluation over a task's splits, ``trainer`` the training loop and results, and
``evaluate`` scoring a saved probe. Heads, CTC and SpecAugment shared with the baseline are
:mod:`scpc.nn`.
"""
