"""`python visualize.py ARCH`: draw a genotype's cells (cells.py), or, given a search
directory, how the search evolved (evolution.py)."""

import argparse
import os
import sys
from pathlib import Path

from darts_paddle.errors import UserError
from darts_paddle.registry import resolve_arch
from darts_paddle.viz.cells import draw_genotype
from darts_paddle.viz.evolution import is_nb201, load_history, render_evolution
from darts_paddle.viz.nb201 import render_nb201_evolution


def _default_name(arch):
    arch = arch.strip()
    if arch.startswith('Genotype('):
        return 'genotype'
    if arch.lower().endswith('.json'):
        return Path(arch).stem
    return arch  # resolved, so a registry name


def render_search(save_dir, out_dir=None):
    """The pictures of how the search in `save_dir` evolved, as its space draws them;
    returns their paths."""
    if is_nb201(load_history(save_dir)):
        return render_nb201_evolution(load_history(save_dir), Path(out_dir or save_dir))
    return render_evolution(save_dir, out_dir)


def build_parser():
    parser = argparse.ArgumentParser(
        description='Draw the normal and reduction cells of a genotype with graphviz, or the '
                    'evolution of a search from its directory.')
    parser.add_argument('arch', help='genotype: a name from genotypes.py, a Genotype(...) literal, '
                                     'or the path of a genotype JSON; or a search directory '
                                     'holding history.json (writes networks.gif, '
                                     'alphas_normal.png, alphas_reduce.png, for a DAAS or '
                                     'PC-DARTS search betas_normal.png, betas_reduce.png, and '
                                     'collapse.png: lambda_max and skip counts per epoch; '
                                     'for a NAS-Bench-201 search alphas_normal.png, '
                                     'collapse.png and nb201.png: the table\'s scores)')
    parser.add_argument('--format', choices=('pdf', 'png', 'both'), default='both',
                        help='output format (default: both)')
    parser.add_argument('--out', default=None,
                        help='output directory (default: ./cells; for a search directory, '
                             'that directory)')
    parser.add_argument('--name', default=None,
                        help='file name prefix (default: the registry name, the JSON file stem, '
                             'or "genotype" for a literal)')
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        if os.path.isdir(args.arch):  # unlike Path.is_dir, False for a long Genotype literal
            paths = render_search(args.arch, args.out)
        else:
            genotype = resolve_arch(args.arch)  # loads the registry only for a name
            name = args.name or _default_name(args.arch)
            formats = ('pdf', 'png') if args.format == 'both' else (args.format,)
            paths = draw_genotype(genotype, args.out or 'cells', name, formats)
    except UserError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    for path in paths:
        print(path)
    return 0
