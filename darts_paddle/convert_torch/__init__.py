"""PyTorch DARTS checkpoints (the original release's layout) converted into darts-paddle
checkpoints: reading them (torch_checkpoint.py), where each tensor goes (layout.py) and the
command (convert.py, run as `python -m darts_paddle.convert_torch`)."""
