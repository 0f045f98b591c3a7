"""Input and output of a run: logging, checkpoints, files, plots, metrics, errors."""
