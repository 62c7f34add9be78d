"""The genotypes a name on the command line can mean: the published ones (published.py) and
the user's own in the top-level genotypes.py, and `resolve_arch`, which also takes a
Genotype(...) literal or a genotype JSON path.  Given the module of NAS-Bench-201's cells
(train.py passes nb201.arch) it also resolves those: an arch string, a name in
genotypes.py whose value is one, or the genotype.json of a NAS-Bench-201 search."""

import importlib
import importlib.util
import os
from pathlib import Path

from . import published
from .errors import UserError
from .genotype import (Genotype, genotype_from_json, parse_genotype, read_genotype_file,
                       suggestion, validate_genotype)

NB201_START = '|'  # how a NAS-Bench-201 arch string begins, and nothing else on --arch


def registry_from_module(module):
    """Every public module-level genotype by name (aliases such as DARTS included), and
    every public string beginning with '|', a NAS-Bench-201 arch string.

    Tuples with Genotype's fields from another namedtuple count too, so a genotypes.py
    copied from elsewhere works; they are converted, not yet validated, and the strings
    are parsed when named (a typo in one is reported under its name).
    """
    registry = {}
    for name, value in vars(module).items():
        if name.startswith('_'):
            continue
        if isinstance(value, tuple) and getattr(value, '_fields', None) == Genotype._fields:
            registry[name] = Genotype(*value)
        elif isinstance(value, str) and value.strip().startswith(NB201_START):
            registry[name] = value.strip()
    return registry


def default_registry():
    """The published genotypes (published.py) and yours: the top-level genotypes.py (on
    sys.path, else beside the package in a source checkout; an installed wheel has none)."""
    registry = registry_from_module(published)
    try:
        user = importlib.import_module('genotypes')
    except ModuleNotFoundError as exc:
        if exc.name != 'genotypes':
            raise
        user = _load_beside_package()
    except Exception as exc:
        raise UserError(f"genotypes.py failed to import ({type(exc).__name__}: {exc}); "
                        "fix the file or pass a Genotype(...) literal / JSON path") from None
    if user is not None:
        registry.update(registry_from_module(user))
    return registry


def _load_beside_package():
    path = Path(__file__).resolve().parent.parent / 'genotypes.py'
    if not path.is_file():
        return None
    spec = importlib.util.spec_from_file_location('genotypes', path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise UserError(f"{path} failed to import ({type(exc).__name__}: {exc}); fix the file "
                        "or pass a Genotype(...) literal / JSON path") from None
    return module


def resolve_arch(text, registry=None, cells=None):
    """--arch value -> Genotype: a registry name, a genotype JSON path, or a Genotype(...)
    literal.  `cells`, the module of NAS-Bench-201's cells (nb201.arch), lets the value be
    such a cell too (an arch string, a registry name holding one, its JSON), returned as
    its ops; without it a cell is refused, the caller building DARTS cells only.  It is
    passed in because importing nb201/ here would close an import cycle (nb201/ reads its
    table through data/, which imports the command-line modules, which reach this one)."""
    text = str(text).strip()
    if text.startswith('Genotype('):
        return parse_genotype(text)
    if text.startswith(NB201_START):
        _need(cells, f"'{text}'")
        return cells.parse(text)
    looks_like_path = text.lower().endswith('.json') or os.sep in text or '/' in text
    if registry is None and not looks_like_path:
        registry = default_registry()
    registry = registry or {}
    if text in registry:
        value = registry[text]
        if isinstance(value, str):
            _need(cells, f"genotype '{text}'")
        try:
            return cells.parse(value) if isinstance(value, str) else validate_genotype(value)
        except UserError as exc:
            raise UserError(f"genotype '{text}' in the registry is broken: {exc}") from None
    if looks_like_path:
        if not os.path.isfile(text):
            raise UserError(f"genotype file {text} does not exist; check the path")
        obj = read_genotype_file(text)
        convert = (cells.from_json if cells is not None and cells.is_cell_json(obj)
                   else genotype_from_json)
        try:
            return convert(obj)
        except UserError as exc:
            raise UserError(f"{text}: {exc}") from None
    hint = suggestion(text, registry)
    cell = f", a NAS-Bench-201 arch string such as '{cells.EXAMPLE}'" if cells else ""
    raise UserError(f"unknown genotype '{text}'{hint}; known: {', '.join(sorted(registry))} "
                    f"(or pass a Genotype(...) literal{cell} or a path to a genotype JSON)")


def _need(cells, source):
    """A NAS-Bench-201 cell named by `source` is refused where `cells` is not given."""
    if cells is None:
        raise UserError(f"{source} is a NAS-Bench-201 cell, and this command takes DARTS "
                        "genotypes only: train it with train.py --arch, score it with "
                        "python -m darts_paddle.nb201")
