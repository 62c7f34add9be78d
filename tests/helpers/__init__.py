"""What several test files share: tiny data files in the published formats
(data_fixtures), convolution and pooling in numpy (numpy_ops), 2-process runs under
paddle.distributed.launch (launching, and search_probe, the script such a run executes),
the per-edge reference supernets (search_reference; nb201_reference, NAS-Bench-201's), the
flags of tiny train_search.py runs (search_runs) and SIGTERM mid-run (stopping).  Imported
as `from tests.helpers import ...` with the repository root on the path (pytest:
pyproject.toml's pythonpath)."""
