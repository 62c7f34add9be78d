"""What a search and a training run share around their algorithm: the run directory and its
log, VisualDL, progress bars, stopping on a signal, the data-parallel start and the end of an
epoch (context.py)."""
