"""The benchmarks, run as scripts (`python bench/search_bench.py ...`), and the PyTorch
reference (torch_reference/).  A package, so that the scripts and the tests import one
another as `bench.<module>` with the repository root on the path: a script run as
`python bench/<script>.py` puts the root there itself; pytest has it on its pythonpath."""
