"""NAS-Bench-201 (Dong & Yang, ICLR 2020): its cell space, written as its arch strings
(arch.py), and its table of trained cells (table.py: `pip install darts-paddle[nb201]`),
which scores a found cell offline.  `python -m darts_paddle.nb201 'ARCH'` prints a cell's
entries."""
