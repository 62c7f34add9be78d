"""What runs save and start from: checkpoints, resume checks, history, imported weights."""
