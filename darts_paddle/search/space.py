"""The DARTS search space as the search loop reaches it (the paper's section 2.1: cells of
4 nodes over 8 ops, a normal and a reduction cell, stacked into the supernet): the flags
it checks, the programs it builds, and how its genotypes are written, read and counted.

loop.py and report.py reach the space through these names only, so a second space (such
as NAS-Bench-201's) is a module of its own sub-package with the same names, and the loop
takes whichever the run names."""

from ..genotype import CELLS, STEPS, check_search_layers, format_genotype, genotype_from_json
from ..genotype import genotype_to_json, save_genotype_json
from . import collapse
from .programs import SearchConfig, build_search_programs, search_heap_bytes

__all__ = ["CELLS", "STEPS", "check_flags", "config", "build_programs", "heap_bytes",
           "genotype_text", "genotype_to_json", "genotype_from_json", "save_genotype",
           "cell_statistics", "skip_connect"]

genotype_text = format_genotype  # a Genotype(...) literal, as genotypes.py spells it
save_genotype = save_genotype_json
build_programs = build_search_programs
heap_bytes = search_heap_bytes
cell_statistics = collapse.cell_statistics


def check_flags(args):
    """Refuse flags the space cannot build, before anything is written."""
    check_search_layers(args.layers)


def config(args, spec, method, world_size):
    """The supernet and optimizers of the flags, for the data set `spec`."""
    return SearchConfig(method=method, C=args.init_channels, layers=args.layers,
                        num_classes=spec.num_classes, in_channels=spec.in_channels,
                        image_size=spec.image_size, epochs=args.epochs,
                        learning_rate=args.learning_rate, learning_rate_min=args.learning_rate_min,
                        momentum=args.momentum, weight_decay=args.weight_decay,
                        grad_clip=args.grad_clip, arch_learning_rate=args.arch_learning_rate,
                        arch_weight_decay=args.arch_weight_decay, unrolled=args.unrolled,
                        world_size=world_size)


def skip_connect(genotype):
    """The skip_connect ops of the cell whose count collapse is watched in (the normal
    cell's; --max_skip caps them)."""
    return collapse.skip_count(genotype.normal)
