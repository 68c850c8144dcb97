"""Training: one loop for every offline objective, with checkpoints, resume and data parallelism."""
