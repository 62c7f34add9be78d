import json
import sys
import types
from collections import namedtuple

import numpy as np
import pytest
from scipy.special import softmax as scipy_softmax

import genotypes
from darts_paddle.errors import UserError
from darts_paddle.genotype import (
    KNOWN_OPS, PRIMITIVES, Genotype, check_search_layers, derive_cell,
    derive_genotype, fewest_layers, format_genotype, genotype_from_alphas, genotype_from_json,
    genotype_from_weights, genotype_to_json, has_normal_cell, load_genotype_json, parse_genotype,
    reduction_layers, save_genotype_json, softmax,
    validate_genotype)
from darts_paddle import published, registry
from darts_paddle.registry import default_registry, registry_from_module, resolve_arch

REGISTRY = registry_from_module(genotypes)
OP = {name: k for k, name in enumerate(PRIMITIVES)}
# first edge row of each node in a 4-node cell: node i has 2 + i incoming edges
ROW0 = [0, 2, 5, 9]


def test_primitives_and_known_ops():
    assert PRIMITIVES[0] == 'none' and len(PRIMITIVES) == 8
    assert 'none' not in KNOWN_OPS
    assert {'sep_conv_7x7', 'conv_7x1_1x7'} <= set(KNOWN_OPS)
    assert len(KNOWN_OPS) == 9


def test_registry_holds_the_reference_genotypes():
    assert set(REGISTRY) == {'DARTS_V1', 'DARTS_V2', 'DARTS', 'DARTS_PADDLE', 'NASNet', 'AmoebaNet'}
    assert REGISTRY['DARTS'] == REGISTRY['DARTS_V2']
    assert REGISTRY['DARTS_PADDLE'].reduce[5] == ('dil_conv_5x5', 3)
    assert REGISTRY['AmoebaNet'].reduce_concat == [3, 4, 6]
    for g in REGISTRY.values():
        assert validate_genotype(g) == g


# --------------------------------------------------------------------------- derivation

def _hand_made_weights():
    """Weights whose top-2 parse is worked out by hand in the comments."""
    w = np.full((14, 8), 0.01)
    # node 0: c_{k-1} sep_conv_3x3 (0.9) beats c_{k-2} max_pool (0.5) -> strongest first
    w[ROW0[0] + 1, OP['sep_conv_3x3']] = 0.9
    w[ROW0[0] + 0, OP['max_pool_3x3']] = 0.5
    # node 1: 'none' dominates the edge from state 0 but must not make it count
    w[ROW0[1] + 0, OP['none']] = 0.99
    w[ROW0[1] + 2, OP['skip_connect']] = 0.6
    w[ROW0[1] + 1, OP['dil_conv_5x5']] = 0.4
    # node 2: state 3 has a huge 'none' AND the best real op (avg_pool 0.7); state 0 second
    w[ROW0[2] + 3, OP['none']] = 0.95
    w[ROW0[2] + 3, OP['avg_pool_3x3']] = 0.7
    w[ROW0[2] + 0, OP['sep_conv_5x5']] = 0.3
    w[ROW0[2] + 1, OP['dil_conv_3x3']] = 0.2
    # node 3: state 4 (node 2) dil_conv_3x3 0.8, state 2 max_pool 0.75
    w[ROW0[3] + 4, OP['dil_conv_3x3']] = 0.8
    w[ROW0[3] + 2, OP['max_pool_3x3']] = 0.75
    w[ROW0[3] + 0, OP['none']] = 0.9
    expected = [('sep_conv_3x3', 1), ('max_pool_3x3', 0),
                ('skip_connect', 2), ('dil_conv_5x5', 1),
                ('avg_pool_3x3', 3), ('sep_conv_5x5', 0),
                ('dil_conv_3x3', 4), ('max_pool_3x3', 2)]
    return w, expected


def test_derive_cell_hand_made():
    w, expected = _hand_made_weights()
    assert derive_cell(w, 4, PRIMITIVES) == expected


def test_none_never_chosen_even_when_largest_everywhere():
    rng = np.random.default_rng(0)
    w = rng.uniform(0, 0.1, (14, 8))
    w[:, OP['none']] = 10.0
    for op, _ in derive_cell(w):
        assert op != 'none'


def test_derive_genotype_both_cells_and_concat():
    w, expected = _hand_made_weights()
    g = derive_genotype(w, w[:, ::-1].copy())
    assert g.normal == expected
    assert g.normal_concat == g.reduce_concat == [2, 3, 4, 5]
    # reversed columns: index k now holds op 7 - k, 'none' sits in the last column
    assert all(op != 'none' for op, _ in g.reduce)
    validate_genotype(g)


def _reference_parse(w, steps, primitives):
    """Independent spelling of the top-2 rule: drop the 'none' column, argsort."""
    keep = [k for k, op in enumerate(primitives) if op != 'none']
    names = [primitives[k] for k in keep]
    out, start = [], 0
    for node in range(steps):
        rows = w[start:start + node + 2][:, keep]
        order = np.argsort(-rows.max(axis=1), kind='stable')[:2]
        out += [(names[int(np.argmax(rows[j]))], int(j)) for j in order]
        start += node + 2
    return out


@pytest.mark.parametrize('steps', [4, 5])
def test_derive_cell_random_matches_reference(steps):
    rng = np.random.default_rng(steps)
    edges = sum(2 + i for i in range(steps))
    for _ in range(20):
        w = softmax(rng.normal(size=(edges, 8)))
        assert derive_cell(w, steps) == _reference_parse(w, steps, PRIMITIVES)


def test_derive_cell_without_none():
    prims = PRIMITIVES[1:]
    w = np.zeros((14, 7))
    for node in range(4):
        w[ROW0[node] + node + 1, prims.index('skip_connect')] = 1.0  # newest state, skip
        w[ROW0[node] + 0, prims.index('sep_conv_5x5')] = 0.5
    g = derive_cell(w, 4, prims)
    assert g[0::2] == [('skip_connect', n + 1) for n in range(4)]
    assert g[1::2] == [('sep_conv_5x5', 0)] * 4


def test_derive_cell_rejects_wrong_shape():
    with pytest.raises(ValueError, match='expected'):
        derive_cell(np.zeros((14, 7)), 4, PRIMITIVES)


def test_softmax_matches_scipy_and_is_stable():
    x = np.random.default_rng(1).normal(size=(14, 8))
    np.testing.assert_allclose(softmax(x), scipy_softmax(x, axis=1), rtol=1e-12)
    big = softmax(np.array([[1000.0, 999.0, 0.0]]))
    assert np.all(np.isfinite(big))
    np.testing.assert_allclose(big[0, :2], [1 / (1 + np.e ** -1), 1 / (1 + np.e)], rtol=1e-12)


def test_genotype_from_alphas_ranks_on_softmax_not_raw_alphas():
    # One node, two edges. Raw alphas favour edge 0 (max 2 > 1.5), but its mass is spread
    # over 7 ops: softmax max = e^2 / (1 + 7 e^2) = 0.141 < e^1.5 / (e^1.5 + 7) = 0.390.
    alphas = np.zeros((2, 8))
    alphas[0, 1:] = 2.0
    alphas[1, OP['dil_conv_5x5']] = 1.5
    g = genotype_from_alphas(alphas, alphas)
    assert g.normal[0] == ('dil_conv_5x5', 1)
    assert g.normal[1] == ('max_pool_3x3', 0)  # tie among 7 ops: the first wins
    assert g.normal_concat == g.reduce_concat == [2]


def test_genotype_from_alphas_four_nodes():
    w, _ = _hand_made_weights()
    w = w / w.sum(axis=1, keepdims=True)
    g = genotype_from_alphas(np.log(w) - 7.0, np.log(w[:, ::-1]))  # softmax(log w + c) = w
    assert g.normal == _reference_parse(w, 4, PRIMITIVES)
    assert g.reduce == _reference_parse(w[:, ::-1], 4, PRIMITIVES)
    assert g.normal_concat == [2, 3, 4, 5]


# --------------------------------------------------------------------------- DAAS: betas

DAAS_OPS = PRIMITIVES[1:]  # DAAS searches without 'none'
D = {name: k for k, name in enumerate(DAAS_OPS)}


def _daas_hand_made():
    """7-op weights and betas where beta overrules op strength at nodes 1, 2, 3."""
    w = np.full((14, 7), 0.01)
    # node 0 (no beta): c_{k-2} skip 0.6 beats c_{k-1} sep_conv_3x3 0.5
    w[ROW0[0] + 0, D['skip_connect']] = 0.6
    w[ROW0[0] + 1, D['sep_conv_3x3']] = 0.5
    # node 1: ops favour states 0 (0.9) and 1 (0.8); beta drops state 0, keeps 1 and 2
    w[ROW0[1] + 0, D['max_pool_3x3']] = 0.9
    w[ROW0[1] + 1, D['dil_conv_3x3']] = 0.8
    w[ROW0[1] + 2, D['avg_pool_3x3']] = 0.3
    # node 2: ops favour states 1, 2; beta keeps 0 and 3, and state 3's op is the stronger
    w[ROW0[2] + 1, D['sep_conv_5x5']] = 0.95
    w[ROW0[2] + 2, D['sep_conv_5x5']] = 0.9
    w[ROW0[2] + 0, D['dil_conv_5x5']] = 0.2
    w[ROW0[2] + 3, D['sep_conv_3x3']] = 0.4
    # node 3: ops favour states 0, 1; beta keeps 2 and 4; state 2's op is the stronger
    w[ROW0[3] + 0, D['sep_conv_3x3']] = 0.99
    w[ROW0[3] + 1, D['sep_conv_3x3']] = 0.98
    w[ROW0[3] + 2, D['max_pool_3x3']] = 0.5
    w[ROW0[3] + 4, D['skip_connect']] = 0.45
    betas = [np.array([0.1, 0.5, 0.4]),
             np.array([0.4, 0.1, 0.2, 0.3]),
             np.array([0.1, 0.2, 0.25, 0.15, 0.3])]
    expected = [('skip_connect', 0), ('sep_conv_3x3', 1),
                ('dil_conv_3x3', 1), ('avg_pool_3x3', 2),
                ('sep_conv_3x3', 3), ('dil_conv_5x5', 0),
                ('max_pool_3x3', 2), ('skip_connect', 4)]
    without_betas = [('skip_connect', 0), ('sep_conv_3x3', 1),
                     ('max_pool_3x3', 0), ('dil_conv_3x3', 1),
                     ('sep_conv_5x5', 1), ('sep_conv_5x5', 2),
                     ('sep_conv_3x3', 0), ('sep_conv_3x3', 1)]
    return w, betas, expected, without_betas


def test_derive_cell_betas_overrule_op_strength():
    w, betas, expected, without_betas = _daas_hand_made()
    assert derive_cell(w, 4, DAAS_OPS) == without_betas
    assert derive_cell(w, 4, DAAS_OPS, betas=[None, *betas]) == expected
    # only the node given scores changes
    assert derive_cell(w, 4, DAAS_OPS, betas=[None, None, betas[1], None]) == (
        without_betas[:4] + expected[4:6] + without_betas[6:])


def test_genotype_from_weights_takes_betas_of_nodes_1_to_3():
    w, betas, expected, without_betas = _daas_hand_made()
    g = genotype_from_weights(w, w, DAAS_OPS, betas_normal=[b.tolist() for b in betas])
    assert g.normal == expected
    assert g.reduce == without_betas
    assert g.normal_concat == g.reduce_concat == [2, 3, 4, 5]
    assert genotype_from_weights(w, w, DAAS_OPS, betas, betas).reduce == expected
    validate_genotype(g)


def test_beta_ties_keep_the_higher_input_index():
    """DAAS's _sift_beta (model_search.py) sorts a node's betas ascending, stably, and drops the
    first ones: on a tie at the cut the higher input index stays."""
    w = np.full((14, 7), 0.1)
    w[:, D['sep_conv_3x3']] = 0.5  # every edge equally strong: order by input index too
    flat = [np.full(3, 1 / 3), np.full(4, 0.25), np.full(5, 0.2)]
    g = genotype_from_weights(w, w, DAAS_OPS, flat, flat)
    assert g.normal == [('sep_conv_3x3', j) for j in (0, 1, 1, 2, 2, 3, 3, 4)]
    # node 2 keeps 2, 3 of the tied 1, 2, 3; node 3 keeps 3 (0.3) and 4 of the tied 2, 4
    tied = [np.array([0.1, 0.3, 0.6]), np.array([0.1, 0.3, 0.3, 0.3]),
            np.array([0.1, 0.1, 0.25, 0.3, 0.25])]
    g = genotype_from_weights(w, w, DAAS_OPS, tied)
    assert g.normal[2:] == [('sep_conv_3x3', j) for j in (1, 2, 2, 3, 3, 4)]


def _reference_daas_parse(w, betas, primitives):
    """Independent spelling, after the authors' genotype(): zero out the rows of the inputs a
    stable ascending sort of the betas puts first, then the plain top-2 parse."""
    w = w.copy()
    start = 0
    for node, beta in enumerate(betas):
        if beta is not None:
            for j in sorted(range(len(beta)), key=lambda x: beta[x])[:len(beta) - 2]:
                w[start + j] = -1.0
        start += node + 2
    return _reference_parse(w, len(betas), primitives)


def test_derive_cell_with_betas_random_matches_reference():
    rng = np.random.default_rng(7)
    for _ in range(30):
        w = softmax(rng.normal(size=(14, 7)))
        betas = [None] + [softmax(rng.normal(size=n)) for n in (3, 4, 5)]
        assert derive_cell(w, 4, DAAS_OPS, betas) == _reference_daas_parse(w, betas, DAAS_OPS)
        kept = derive_cell(w, 4, DAAS_OPS, betas)
        for node in (1, 2, 3):
            inputs = {j for _, j in kept[2 * node:2 * node + 2]}
            assert inputs == set(np.argsort(-betas[node])[:2].tolist())


def test_betas_of_the_wrong_shape_are_rejected():
    w = np.full((14, 7), 0.1)
    with pytest.raises(ValueError, match='node 2 has 4 inputs'):
        derive_cell(w, 4, DAAS_OPS, [None, np.zeros(3), np.zeros(5), np.zeros(5)])
    with pytest.raises(ValueError, match='3 entries for 4 nodes'):
        derive_cell(w, 4, DAAS_OPS, [np.zeros(3), np.zeros(4), np.zeros(5)])
    with pytest.raises(ValueError, match='nodes 1..3'):
        genotype_from_weights(w, w, DAAS_OPS, [None, np.zeros(3), np.zeros(4), np.zeros(5)])


# --------------------------------------------------------------------------- text format

DARTS_V2_NESTED = """Genotype(
    normal=[[('sep_conv_3x3', 0), ('sep_conv_3x3', 1)], [('sep_conv_3x3', 0), ('sep_conv_3x3', 1)],
            [('sep_conv_3x3', 1), ('skip_connect', 0)], [('skip_connect', 0), ('dil_conv_3x3', 2)]],
    normal_concat=range(2, 6),
    reduce=[[('max_pool_3x3', 0), ('max_pool_3x3', 1)], [('skip_connect', 2), ('max_pool_3x3', 1)],
            [('max_pool_3x3', 0), ('skip_connect', 2)], [('skip_connect', 2), ('max_pool_3x3', 1)]],
    reduce_concat=range(2, 6))"""


def test_format_is_the_reference_spelling():
    src = open(published.__file__).read()
    for name in ('DARTS_V1', 'DARTS_V2', 'DARTS_PADDLE', 'NASNet', 'AmoebaNet'):
        assert f'{name} = {format_genotype(REGISTRY[name])}\n' in src


def test_nested_literal_with_range_equals_registry():
    assert parse_genotype(DARTS_V2_NESTED) == REGISTRY['DARTS_V2']


def _nested_text(g):
    def cell(ops):
        return '[' + ', '.join(repr([tuple(ops[i]), tuple(ops[i + 1])]) for i in range(0, len(ops), 2)) + ']'
    return (f'Genotype({cell(g.normal)}, tuple({g.normal_concat}), {cell(g.reduce)}, '
            f'reduce_concat={tuple(g.reduce_concat)!r})').replace('tuple(', '(')


@pytest.mark.parametrize('name', sorted(REGISTRY))
def test_literal_round_trips(name):
    g = REGISTRY[name]
    assert parse_genotype(format_genotype(g)) == g
    # nested per node, positional + keyword, tuple concat
    assert parse_genotype(_nested_text(g)) == g


def test_range_with_one_argument_and_positional_fields():
    text = ("Genotype([('skip_connect', 0), ('skip_connect', 1)], range(2), "
            "[('max_pool_3x3', 0), ('max_pool_3x3', 1)], [2])")
    with pytest.raises(UserError, match=r'normal_concat: 0 is not an intermediate state'):
        parse_genotype(text)
    g = parse_genotype(text.replace('range(2)', 'range(2, 3)'))
    assert g == Genotype([('skip_connect', 0), ('skip_connect', 1)], [2],
                         [('max_pool_3x3', 0), ('max_pool_3x3', 1)], [2])


def test_a_range_concat_is_bounded_before_it_is_listed():
    # listed first, range(2, 3000000000) would be a MemoryError (or worse) instead
    huge = ("Genotype(normal=[('skip_connect', 0), ('skip_connect', 1)], "
            "normal_concat=range(2, 3000000000), reduce=[('max_pool_3x3', 0), "
            "('max_pool_3x3', 1)], reduce_concat=[2])")
    message = r'normal_concat: 2999999999 is not an intermediate state; with 1 nodes .* \[2\]$'
    with pytest.raises(UserError, match=message):
        parse_genotype(huge)
    with pytest.raises(UserError, match=message):
        resolve_arch(huge, registry={})
    with pytest.raises(UserError, match=r'normal_concat: 10{30} is not'):
        parse_genotype(huge.replace('range(2, 3000000000)', f'range(2, {10 ** 30 + 1})'))
    with pytest.raises(UserError, match=r'normal_concat: expected a non-empty list'):
        parse_genotype(huge.replace('range(2, 3000000000)', 'range(3, 3)'))
    registry = {'BIG': REGISTRY['DARTS_V2']._replace(reduce_concat=range(2, 3000000000))}
    with pytest.raises(UserError, match="'BIG' in the registry is broken: reduce_concat: 2999999999"):
        resolve_arch('BIG', registry)


V2 = format_genotype(REGISTRY['DARTS_V2'])


@pytest.mark.parametrize('text, message', [
    ("__import__('os').system('x')", 'not a Genotype'),
    (V2.replace("('sep_conv_3x3', 0)", "(sep_conv_3x3, 0)", 1), 'normal: `sep_conv_3x3` is not allowed'),
    (V2.replace("'dil_conv_3x3'", "'dil_conv_9x9'"), "normal cell, node 3: unknown op 'dil_conv_9x9'"),
    (V2.replace("('dil_conv_3x3', 2)", "('dil_conv_3x3', 5)"), 'normal cell, node 3: input index 5'),
    (V2.replace("reduce=[", "reduce=lambda: [", 1), 'reduce: `lambda'),
    (V2.replace("('max_pool_3x3', 0), ", "", 1), 'reduce cell: 7 (op, input) pairs is odd'),
    (V2.replace(", reduce_concat=[2, 3, 4, 5]", ""), 'missing reduce_concat'),
    (V2.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=[2, 3, 3, 5]"), 'repeats'),
    (V2.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=[2, 3, 4, 6]"), 'normal_concat: 6'),
    (V2.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=list(range(2, 6))"), 'list(range'),
    (V2.replace("('sep_conv_3x3', 0)", "('sep_conv_3x3', True)", 1), 'normal: `True` is not allowed'),
    (V2.replace("('sep_conv_3x3', 0)", "('sep_conv_3x3', -1)", 1), 'input index -1'),
    (V2.replace("Genotype(", "genotypes.Genotype(", 1), 'not a Genotype'),
    ("genotypes.DARTS", 'not a Genotype'),
    ("Genotype(**{'normal': []})", "no field '**"),
    ("Genotype([], [], [], [], [])", '5 positional'),
    (V2.replace("reduce_concat=", "colour="), "no field 'colour'"),
    ("Genotype(normal=[", 'not valid Python syntax'),
    (V2.replace("normal=[", "normal=[[('skip_connect', 0), ('skip_connect', 1)], ", 1), 'mixes'),
    (V2.replace("normal=[", "normal=[[('skip_connect', 0)], ", 1), 'node 0: has 1 inputs'),
    (V2.replace("normal=[", "normal=[('skip_connect', 0), 3, ", 1), 'node 0: 3 is not an (op name'),
])
def test_rejects_malformed_or_malicious_text(text, message):
    with pytest.raises(UserError) as info:
        parse_genotype(text)
    assert message in str(info.value)
    assert '\n' not in str(info.value)


def test_never_evaluates_code(tmp_path):
    marker = tmp_path / 'pwned'
    payload = (f"Genotype(normal=__import__('pathlib').Path({str(marker)!r}).touch(), "
               "normal_concat=[2], reduce=[], reduce_concat=[2])")
    with pytest.raises(UserError):
        parse_genotype(payload)
    with pytest.raises(UserError):
        resolve_arch(payload, registry={})
    assert not marker.exists()


def test_nested_node_with_three_inputs_is_rejected():
    bad = DARTS_V2_NESTED.replace("[('sep_conv_3x3', 0), ('sep_conv_3x3', 1)],",
                                  "[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('skip_connect', 0)],", 1)
    with pytest.raises(UserError, match='normal cell, node 0: has 3 inputs'):
        parse_genotype(bad)


def test_validate_rejects_none_op_and_normalises_numpy_values():
    with pytest.raises(UserError, match="unknown op 'none'"):
        validate_genotype(Genotype([('none', 0), ('skip_connect', 1)], [2],
                                   [('skip_connect', 0), ('skip_connect', 1)], [2]))
    g = validate_genotype(Genotype([(np.str_('skip_connect'), np.int64(0)), ['sep_conv_3x3', 1]],
                                   (np.int64(2),), [('skip_connect', 0), ('skip_connect', 1)], range(2, 3)))
    assert g == Genotype([('skip_connect', 0), ('sep_conv_3x3', 1)], [2],
                         [('skip_connect', 0), ('skip_connect', 1)], [2])
    assert type(g.normal[0][1]) is int and type(g.normal_concat[0]) is int
    assert type(g.normal[1]) is tuple


# --------------------------------------------------------------------------- JSON

@pytest.mark.parametrize('name', sorted(REGISTRY))
def test_json_round_trip(name, tmp_path):
    g = REGISTRY[name]
    obj = genotype_to_json(g)
    assert obj['normal'][0] == list(g.normal[0])
    assert genotype_from_json(json.loads(json.dumps(obj))) == g
    path = save_genotype_json(g, tmp_path / 'g.json')
    assert load_genotype_json(path) == g
    assert sorted(p.name for p in tmp_path.iterdir()) == ['g.json']  # temp file replaced


def test_json_inside_a_search_record(tmp_path):
    g = REGISTRY['DARTS_PADDLE']
    record = {'epoch': 49, 'valid_acc': 0.88, 'genotype': genotype_to_json(g)}
    path = tmp_path / 'search.json'
    path.write_text(json.dumps(record))
    assert load_genotype_json(path) == g
    assert genotype_from_json({'genotype': format_genotype(g)}) == g


def test_bad_json_files(tmp_path):
    broken = tmp_path / 'broken.json'
    broken.write_text('{"normal": [')
    with pytest.raises(UserError, match='not valid JSON'):
        load_genotype_json(broken)
    partial = tmp_path / 'partial.json'
    partial.write_text(json.dumps({'normal': [['skip_connect', 0], ['skip_connect', 1]]}))
    with pytest.raises(UserError, match='lacks normal_concat, reduce, reduce_concat'):
        load_genotype_json(partial)
    with pytest.raises(UserError, match='does not exist'):
        load_genotype_json(tmp_path / 'nope.json')


def test_a_genotype_file_that_is_not_utf8_is_one_error_line(tmp_path):
    latin1 = tmp_path / 'latin1.json'
    latin1.write_bytes('{"normal": "é"}'.encode('latin-1'))
    for load in load_genotype_json, lambda path: resolve_arch(str(path), REGISTRY):
        with pytest.raises(UserError) as info:
            load(latin1)
        message = str(info.value)
        assert f'genotype file {latin1} is not UTF-8 text' in message and 'byte 12' in message
        assert '\n' not in message


# --------------------------------------------------------------------------- registry / resolve

def test_registry_from_module_picks_genotypes_only():
    Foreign = namedtuple('Genotype', 'normal normal_concat reduce reduce_concat')
    module = types.ModuleType('mine')
    module.A = Genotype([('skip_connect', 0), ('skip_connect', 1)], [2],
                        [('skip_connect', 0), ('skip_connect', 1)], [2])
    module.B = Foreign(*module.A)
    module._private = module.A
    module.other = (1, 2, 3, 4)
    module.PRIMITIVES = PRIMITIVES
    reg = registry_from_module(module)
    assert set(reg) == {'A', 'B'}
    assert type(reg['B']) is Genotype and reg['B'] == module.A


def test_default_registry_falls_back_to_file_beside_package(monkeypatch):
    assert set(default_registry()) == set(REGISTRY)
    monkeypatch.setitem(sys.modules, 'genotypes', None)  # makes `import genotypes` fail
    assert default_registry()['DARTS_PADDLE'] == REGISTRY['DARTS_PADDLE']


def test_published_genotypes_resolve_without_a_user_registry(monkeypatch):
    """An installed wheel has no top-level genotypes.py: the published names still work."""
    monkeypatch.setitem(sys.modules, 'genotypes', None)
    monkeypatch.setattr(registry, '_load_beside_package', lambda: None)
    assert set(default_registry()) == {'DARTS_V1', 'DARTS_V2', 'DARTS', 'DARTS_PADDLE', 'NASNet',
                                       'AmoebaNet'}
    assert resolve_arch('DARTS') == REGISTRY['DARTS_V2']


def test_the_user_registry_adds_to_the_published_genotypes(monkeypatch):
    mine = types.ModuleType('genotypes')
    mine.MY_ARCH = Genotype([('skip_connect', 0), ('sep_conv_3x3', 1)], [2],
                            [('max_pool_3x3', 0), ('skip_connect', 1)], [2])
    monkeypatch.setitem(sys.modules, 'genotypes', mine)
    assert resolve_arch('MY_ARCH') == mine.MY_ARCH
    assert resolve_arch('DARTS_V1') == REGISTRY['DARTS_V1']


def test_resolve_by_name_literal_and_json(tmp_path):
    g = REGISTRY['DARTS_V1']
    assert resolve_arch('DARTS_V1', REGISTRY) == g
    assert resolve_arch('DARTS_V1') == g  # default registry
    assert resolve_arch('  ' + format_genotype(g) + '\n') == g
    path = save_genotype_json(g, tmp_path / 'arch.json')
    assert resolve_arch(str(path), REGISTRY) == g
    assert resolve_arch(str(path)) == g


def test_resolve_unknown_name_lists_known_names():
    with pytest.raises(UserError) as info:
        resolve_arch('DARTS_V3', REGISTRY)
    msg = str(info.value)
    assert "unknown genotype 'DARTS_V3'" in msg
    assert 'did you mean' in msg
    assert 'AmoebaNet, DARTS, DARTS_PADDLE, DARTS_V1, DARTS_V2, NASNet' in msg
    assert 'Genotype(...) literal' in msg and 'JSON' in msg


def test_resolve_missing_json_names_the_path(tmp_path):
    missing = tmp_path / 'missing.json'
    with pytest.raises(UserError, match=f'{missing} does not exist'):
        resolve_arch(str(missing), REGISTRY)


def test_resolve_broken_registry_entry():
    broken = {'BAD': Genotype([('skip_connect', 5), ('skip_connect', 1)], [2],
                              [('skip_connect', 0), ('skip_connect', 1)], [2])}
    with pytest.raises(UserError, match="genotype 'BAD' in the registry is broken: normal cell, node 0"):
        resolve_arch('BAD', broken)


# --------------------------------------------------------------------------- cell stacks

def test_searches_without_a_normal_cell_are_refused():
    assert [n for n in range(1, 9) if not has_normal_cell(n)] == [1, 2]
    assert fewest_layers(has_normal_cell) == 3
    assert fewest_layers(lambda n: len(set(reduction_layers(n))) == 2) == 2
    for layers in 1, 2:
        with pytest.raises(UserError, match=f'--layers {layers} has no normal cell.*'
                                            '--layers 3 or more'):
            check_search_layers(layers)
    for layers in 3, 8, 20:
        check_search_layers(layers)
