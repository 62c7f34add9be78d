"""The published PyTorch DARTS, re-written in its module layout: the networks (`models`) and
the search step (`architect`).

Not part of the library: users never run it.  bench/compare_torch.py times it against our
programs, and the tests check our checkpoint import and our architect against it.  It
lives beside the benchmark because `python bench/<script>.py` finds it with no path set-up;
pytest reaches it through `pythonpath` in pyproject.toml.  torch is imported only here.
"""
