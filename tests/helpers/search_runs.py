"""The tiny train_search.py runs of the tests: Fashion-MNIST, 3 cells of 2 channels, batch 4,
no lambda_max estimate (its 20 gradient passes an epoch were a quarter of a tiny run; the
tests of search/collapse.py ask for it).  Later flags win (argparse keeps the last), so a
test appends what it changes."""

import glob


def search_flags(root, save, *extra):
    return ["--dataset", "fashion_mnist", "--data", root, "--save", save, "--layers", "3",
            "--init_channels", "2", "--batch_size", "4", "--epochs", "2", "--max_steps", "3",
            "--report_freq", "1", "--eigen_batches", "0", *extra]


def run_dir(save):
    """The one run directory of --save `save` in the current directory."""
    (path,) = glob.glob(f"search-{save}-*")
    return path
