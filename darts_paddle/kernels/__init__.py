"""Our own CPU kernels, compiled on first use as Paddle custom ops (depthwise.py)."""
