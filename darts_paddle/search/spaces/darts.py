"""The DARTS search space (--space darts, the paper's section 2.1: cells of 4 nodes over
8 ops, a normal and a reduction cell, stacked into the supernet): the flags it checks,
the programs it builds, how a cell is derived from the alphas, and how its genotypes are
written, read, counted and drawn."""

from ...genotype import (check_search_layers, format_genotype, genotype_from_json,
                         genotype_to_json, save_genotype_json)
from .. import collapse
from ...viz.cells import genotype_pictures
from ..methods.layout import DARTS as LAYOUT
from ..programs import SearchConfig, build_search_programs, search_heap_bytes

NAME = LAYOUT.name
genotype_text = format_genotype  # a Genotype(...) literal, as genotypes.py spells it
save_genotype = save_genotype_json
build_programs = build_search_programs
heap_bytes = search_heap_bytes
__all__ = ["NAME", "LAYOUT", "check_flags", "set_run_flags", "config", "build_programs",
           "heap_bytes", "derive", "genotype_text", "genotype_to_json", "genotype_from_json",
           "save_genotype", "cell_ops", "scores", "pictures"]


def check_flags(args):
    """Refuse flags the space cannot build, before anything is written."""
    check_search_layers(args.layers)


def set_run_flags(args, given):
    """A new run's flags where the space's defaults differ from the parser's: none
    (returns the log line of what was set: None)."""


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


def derive(method, arch, max_skip=None):
    """The genotype of the raw architecture parameters `arch` by the method's rule (the
    paper's top-2 parse, or the method's own); `max_skip`: P-DARTS's cap on the normal
    cell's skip_connect ops."""
    return method.genotype(arch, max_skip)


def cell_ops(genotype):
    """{cell: its ops}, whose collapse is watched (collapse.cell_statistics)."""
    return {cell: [op for op, _ in getattr(genotype, cell)] for cell in LAYOUT.cells}


def scores(genotype):
    """What a table says the cell is worth: nothing here (DARTS's space has no table)."""
    return None


pictures = genotype_pictures  # {cell: a function drawing it as PNG bytes}, for VisualDL
