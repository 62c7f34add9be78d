"""What outlives a process, for any run: atomic files, checkpoints, history records and the
rule of --resume.  A leaf: it imports nothing of darts_paddle but errors, so every layer
above may use it."""
