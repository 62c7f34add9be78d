#!/usr/bin/env bash
# Set up (scripts/setup.sh), then run a short but real DARTS search on Fashion-MNIST from
# the Debian package, draw the cell it finds and its evolution (GIF, alpha plots), and run
# a few second-order steps too.  Small network and few steps, so that it ends in minutes on
# a laptop CPU; the full search is `python train_search.py`.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
python -m darts_paddle.data fashion_mnist
python train_search.py --dataset fashion_mnist --save demo --layers 5 --init_channels 4 \
  --batch_size 16 --epochs 4 --max_steps 25 --report_freq 10 "$@"
run=$(ls -td search-demo-* | head -n 1)
python visualize.py "$run/genotype.json" --out "$run" --format png
python visualize.py "$run"   # networks.gif, alphas_normal.png, alphas_reduce.png, collapse.png
python train_search.py --dataset fashion_mnist --save demo-unrolled --unrolled --layers 5 \
  --init_channels 4 --batch_size 16 --epochs 1 --max_steps 5
echo "demo: the search's log, history, genotype and pictures are in $run/"
