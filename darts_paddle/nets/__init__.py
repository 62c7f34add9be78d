"""Network building blocks and the evaluation networks (CIFAR, ImageNet) with auxiliary heads."""
