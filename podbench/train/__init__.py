"""The lane trainer: folds, tasks, metrics, the compiled program and the results it writes."""
