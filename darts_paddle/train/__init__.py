"""Training a genotype from scratch (train.py, train_imagenet.py): the loop, its programs,
the checkpoint (state.py), the inference export and the flags."""
