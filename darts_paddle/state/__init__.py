"""What outlives a process: atomic checkpoints, a search run's state and history, and
PyTorch checkpoints converted into ours."""
