"""Training a genotype from scratch: the loop, its programs, data parallel, the flags."""
