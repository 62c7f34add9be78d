import json
import re
import shutil

import pytest

import genotypes
from darts_paddle.errors import UserError
from darts_paddle.genotype import format_genotype, genotype_to_json
from darts_paddle.viz import cells
from darts_paddle.viz.cells import (cell_graph, draw_genotype, fixed_layout, op_label,
                                    render_pinned_png)
from darts_paddle.viz.command import main

PNG_MAGIC = b'\x89PNG\r\n\x1a\n'
needs_dot = pytest.mark.skipif(shutil.which('dot') is None, reason="graphviz 'dot' not installed")


def _edges(graph):
    """(tail, head, op) for every edge line of the DOT source; the op's name from its label."""
    found = []
    for line in graph.body:
        m = re.match(r'\s*"?([^"\s]+)"?\s*->\s*"?([^"\s]+)"?(?:\s*\[(.*)\])?', line)
        if m:
            label = re.search(r'label="([^"]+)"', m.group(3) or '')
            op = label.group(1).replace(r'\n', '_') if label else None  # undo op_label
            found.append((m.group(1), m.group(2), op))
    return found


def test_cell_graph_edges_follow_the_genotype():
    g = genotypes.DARTS_PADDLE
    edges = _edges(cell_graph(g.reduce, g.reduce_concat))
    # input index j >= 2 is node j - 2: ('dil_conv_5x5', 3) of node 2 comes from node 1
    assert ('c_{k-1}', '0', 'skip_connect') in edges
    assert ('c_{k-2}', '0', 'max_pool_3x3') in edges
    assert ('0', '2', 'skip_connect') in edges
    assert ('1', '2', 'dil_conv_5x5') in edges
    assert len(edges) == len(g.reduce) + len(g.reduce_concat)
    assert sorted(t for t, h, _ in edges if h == 'c_{k}') == ['0', '1', '2', '3']


def test_only_concat_nodes_feed_the_output():
    g = genotypes.AmoebaNet  # 5 nodes, normal concat [4, 5, 6] = nodes 2, 3, 4
    edges = _edges(cell_graph(g.normal, g.normal_concat))
    assert sorted(t for t, h, _ in edges if h == 'c_{k}') == ['2', '3', '4']
    assert ('0', '1', 'sep_conv_5x5') in edges  # node 1 reads state 2 = node 0
    reduce_edges = _edges(cell_graph(g.reduce, g.reduce_concat))
    assert sorted(t for t, h, _ in reduce_edges if h == 'c_{k}') == ['1', '2', '4']
    assert ('c_{k-2}', '4', 'conv_7x1_1x7') in reduce_edges


def test_cell_graph_validates_its_input():
    with pytest.raises(UserError, match='input index 3 out of range'):
        cell_graph([('skip_connect', 3), ('skip_connect', 1)], [2])


@needs_dot
@pytest.mark.parametrize('name', ['DARTS_PADDLE', 'AmoebaNet'])
def test_draw_genotype_writes_pdf_and_png(name, tmp_path):
    paths = draw_genotype(getattr(genotypes, name), tmp_path / 'out', name)
    expected = {f'{name}_{cell}.{fmt}' for cell in ('normal', 'reduce') for fmt in ('pdf', 'png')}
    assert {p.name for p in paths} == expected
    assert {p.name for p in (tmp_path / 'out').iterdir()} == expected  # no DOT side files
    for p in paths:
        data = p.read_bytes()
        assert data.startswith(PNG_MAGIC if p.suffix == '.png' else b'%PDF')
        assert len(data) > 1000


def test_op_labels_break_at_the_last_underscore():
    assert op_label('sep_conv_3x3') == r'sep_conv\n3x3'
    assert op_label('skip_connect') == r'skip\nconnect'
    assert op_label('conv_7x1_1x7') == r'conv_7x1\n1x7'


@needs_dot
def test_render_pinned_png_returns_png_bytes():
    g = genotypes.NASNet  # two ops of one node read the same state: two edges
    layout = fixed_layout([(g.normal, g.normal_concat)], label='NASNet normal')
    assert sorted(key for key in layout.edges if key.startswith('c_{k-2}->1')) == [
        'c_{k-2}->1#0', 'c_{k-2}->1#1']
    data = render_pinned_png(layout, g.normal, g.normal_concat)
    assert data.startswith(PNG_MAGIC) and len(data) > 1000


def test_missing_dot_is_a_user_error(monkeypatch, tmp_path):
    monkeypatch.setattr(shutil, 'which', lambda name, *a, **k: None)
    g = genotypes.DARTS_V2
    with pytest.raises(UserError, match="graphviz 'dot' not found: install it with `apt-get install graphviz`"):
        draw_genotype(g, tmp_path, 'x')
    with pytest.raises(UserError, match="'dot' not found"):
        fixed_layout([(g.normal, g.normal_concat)])
    assert list(tmp_path.iterdir()) == []


def test_main_unknown_name_fails_with_one_line(capsys, tmp_path):
    assert main(['DARTS_V9', '--out', str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown genotype 'DARTS_V9'")
    assert err.count('\n') == 1 and 'Traceback' not in err
    assert 'DARTS_PADDLE' in err


def test_main_missing_dot(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(shutil, 'which', lambda name, *a, **k: None)
    assert main(['DARTS', '--out', str(tmp_path)]) == 2
    assert "apt-get install graphviz" in capsys.readouterr().err


@needs_dot
def test_main_name_literal_and_json(capsys, tmp_path):
    assert main(['DARTS_PADDLE', '--format', 'png', '--out', str(tmp_path)]) == 0
    printed = capsys.readouterr().out.split()
    assert [p.rsplit('/', 1)[1] for p in printed] == ['DARTS_PADDLE_normal.png', 'DARTS_PADDLE_reduce.png']

    literal = format_genotype(genotypes.DARTS_V1)
    assert main([literal, '--format', 'pdf', '--out', str(tmp_path)]) == 0
    assert (tmp_path / 'genotype_normal.pdf').read_bytes().startswith(b'%PDF')

    arch = tmp_path / 'found.json'
    arch.write_text(json.dumps({'epoch': 3, 'genotype': genotype_to_json(genotypes.NASNet)}))
    assert main([str(arch), '--out', str(tmp_path / 'cells')]) == 0
    assert (tmp_path / 'cells' / 'found_reduce.png').read_bytes().startswith(PNG_MAGIC)


def test_op_colours_are_distinct_per_family():
    colours = {cells.op_colour(op) for op in ('sep_conv_3x3', 'dil_conv_3x3', 'max_pool_3x3',
                                                  'avg_pool_3x3', 'skip_connect', 'conv_7x1_1x7')}
    assert len(colours) == 6
    assert cells.op_colour('sep_conv_7x7') == cells.op_colour('sep_conv_3x3')
