"""The published PyTorch DARTS, re-written in its module layout: the networks (`models`) and
the search step (`architect`).

Not part of the library: users never run it.  bench/compare_torch.py times it against our
programs, and the tests check our checkpoint import and our architect against it.  It
lives beside the benchmark, in the `bench` package: both import it as
`bench.torch_reference` with the repository root on the path (`python bench/<script>.py`
puts it there; pytest through `pythonpath` in pyproject.toml).  torch is imported only here.
"""
