"""SUPERB-style probing of scpc checkpoints: a frozen (or fine-tuned) upstream, a learnable
weighted sum of its layers, and a task's small downstream head (``scpc-superb``).

``task`` holds the contract between the trainer and the tasks, ``tasks`` the registry,
``upstream`` the upstream and featurizer, ``data`` audio, batching and the frozen-output
cache, ``specaug`` SpecAugment, and ``trainer`` the training loop, checkpoints and results.
"""
