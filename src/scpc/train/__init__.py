"""Training: the pre-training loop (``loop``, ``model``, ``distributed``) and what every trainer
shares (the probes' and the baseline's too): ``state`` (last.ckpt and provenance), ``metrics``
(metrics.csv and curves.png), ``run_log`` (train.log), ``amp`` (the mixed-precision rule),
``seeds``, ``schedule`` (optimisers and learning-rate schedules) and ``stop_signals``."""
