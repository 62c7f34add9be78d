"""What outlives a process: atomic checkpoints, and PyTorch checkpoints converted into ours."""
