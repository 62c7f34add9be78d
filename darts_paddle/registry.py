"""The genotypes a name on the command line can mean: the published ones (published.py) and
the user's own in the top-level genotypes.py, and `resolve_arch`, which also takes a
Genotype(...) literal or a genotype JSON path."""

import importlib
import importlib.util
import os
from pathlib import Path

from . import published
from .errors import UserError
from .genotype import Genotype, load_genotype_json, parse_genotype, suggestion, validate_genotype


def registry_from_module(module):
    """Every public module-level genotype by name (aliases such as DARTS included).

    Tuples with Genotype's fields from another namedtuple count too, so a genotypes.py
    copied from elsewhere works; they are converted, not yet validated.
    """
    registry = {}
    for name, value in vars(module).items():
        if (not name.startswith('_') and isinstance(value, tuple)
                and getattr(value, '_fields', None) == Genotype._fields):
            registry[name] = Genotype(*value)
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


def resolve_arch(text, registry=None):
    """--arch value -> Genotype: a registry name, a genotype JSON path, or a Genotype(...) literal."""
    text = str(text).strip()
    if text.startswith('Genotype('):
        return parse_genotype(text)
    looks_like_path = text.lower().endswith('.json') or os.sep in text or '/' in text
    if registry is None and not looks_like_path:
        registry = default_registry()
    registry = registry or {}
    if text in registry:
        try:
            return validate_genotype(registry[text])
        except UserError as exc:
            raise UserError(f"genotype '{text}' in the registry is broken: {exc}") from None
    if looks_like_path:
        if not os.path.isfile(text):
            raise UserError(f"genotype file {text} does not exist; check the path")
        return load_genotype_json(text)
    hint = suggestion(text, registry)
    raise UserError(f"unknown genotype '{text}'{hint}; known: {', '.join(sorted(registry))} "
                    "(or pass a Genotype(...) literal or a path to a genotype JSON)")
