"""Training: the run's configuration, the loop with its checkpoints, validation and log."""
