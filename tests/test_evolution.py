import io
import json
import re
import shutil

import numpy as np
import pytest

import genotypes
from darts_paddle.viz import evolution
from darts_paddle.errors import UserError
from darts_paddle.viz.cells import fixed_layout, pinned_cell_graph
from darts_paddle.genotype import PRIMITIVES, genotype_from_weights, genotype_to_json, softmax
from darts_paddle.viz.command import main

PNG_MAGIC = b'\x89PNG\r\n\x1a\n'
needs_dot = pytest.mark.skipif(shutil.which('dot') is None, reason="graphviz 'dot' not installed")
ARCHS = ('DARTS_V1', 'DARTS_V2', 'DARTS_PADDLE')  # one genotype per epoch, all different


def _softmax_rows(rng, edges=14):
    rows = rng.random((edges, len(PRIMITIVES)))
    return (rows / rows.sum(axis=1, keepdims=True)).tolist()


def _write_history(directory, archs=ARCHS):
    rng = np.random.default_rng(0)
    history = [{'epoch': e + 1, 'train_loss': 2.0 - e / 10, 'train_acc': 0.3 + e / 10,
                'valid_loss': 2.1 - e / 10, 'valid_acc': 0.25 + e / 10,
                'genotype': genotype_to_json(getattr(genotypes, arch)),
                'softmax_alphas_normal': _softmax_rows(rng),
                'softmax_alphas_reduce': _softmax_rows(rng)} for e, arch in enumerate(archs)]
    (directory / 'history.json').write_text(json.dumps(history))
    return history


def _gif_frames(path):
    from PIL import Image

    with Image.open(path) as gif:
        frames = []
        for k in range(gif.n_frames):
            gif.seek(k)
            frames.append(gif.convert('RGB'))
    return frames


def test_edge_titles_follow_the_row_order():
    titles = evolution.edge_titles(4)
    assert len(titles) == 14
    assert titles[:2] == ['c_{k-2} → node 0', 'c_{k-1} → node 0']
    assert titles[4] == 'node 0 → node 1'  # node 1 reads states 0, 1, 2
    assert titles[-1] == 'node 2 → node 3'


@needs_dot
def test_main_draws_the_evolution_of_a_search(capsys, tmp_path):
    from PIL import ImageChops

    _write_history(tmp_path)
    assert main([str(tmp_path)]) == 0
    printed = capsys.readouterr().out.split()
    assert [p.rsplit('/', 1)[1] for p in printed] == ['networks.gif', 'alphas_normal.png',
                                                      'alphas_reduce.png']
    frames = _gif_frames(tmp_path / 'networks.gif')
    assert len(frames) == len(ARCHS)
    assert len({f.size for f in frames}) == 1
    # A different genotype per epoch must show: frames differ well beyond the caption strip.
    body = (0, 60, frames[0].width, frames[0].height)
    assert ImageChops.difference(frames[0].crop(body), frames[1].crop(body)).getbbox() is not None
    assert frames[0].getpixel((1, frames[0].height - 2)) == (255, 255, 255)  # white background
    for cell in ('normal', 'reduce'):
        assert (tmp_path / f'alphas_{cell}.png').read_bytes().startswith(PNG_MAGIC)


@needs_dot
def test_out_directory_and_same_genotype_frames(tmp_path):
    from PIL import Image

    _write_history(tmp_path, archs=('DARTS_V2', 'DARTS_V2'))
    evolution.render_evolution(tmp_path, tmp_path / 'pics')
    assert sorted(p.name for p in (tmp_path / 'pics').iterdir()) == [
        'alphas_normal.png', 'alphas_reduce.png', 'networks.gif']
    with Image.open(tmp_path / 'pics' / 'networks.gif') as gif:
        assert gif.n_frames == 2  # the caption differs, so Pillow keeps both frames


# graphviz's darkseagreen2, lightblue, palegoldenrod: the fills of inputs, nodes and output
NODE_FILLS = ((180, 238, 180), (173, 216, 230), (238, 232, 170))


def _node_pixels(frame):
    rgb = np.asarray(frame, dtype=int)
    return np.any([np.abs(rgb - fill).sum(axis=2) < 24 for fill in NODE_FILLS], axis=0)


@needs_dot
def test_gif_stacks_the_cells_and_keeps_the_nodes_in_place(tmp_path):
    _write_history(tmp_path)  # a different genotype per epoch
    evolution.render_evolution(tmp_path)
    frames = _gif_frames(tmp_path / 'networks.gif')
    assert len(frames) == len(ARCHS) and len({f.size for f in frames}) == 1
    width, height = frames[0].size
    assert height > 0.6 * width  # one cell above the other, not a strip
    # Edge labels are 18 pt at 96 dpi, digits 18 px high: 10 px or more at 800 px wide.
    assert width <= 1400
    nodes = [_node_pixels(f) for f in frames]
    assert nodes[0].sum() > 14 * 600  # 2 x 7 boxes of 36 x 36 px or wider
    for other in nodes[1:]:
        # only anti-aliasing where an arrow touches a box may differ; a moved box would
        # change hundreds of pixels
        assert (other != nodes[0]).sum() < 100
    # the edges do change
    assert all(np.abs(np.asarray(f, dtype=int) - np.asarray(frames[0], dtype=int)).sum() > 0
               for f in frames[1:])


@needs_dot
@pytest.mark.parametrize('cell', ['normal', 'reduce'])
def test_pinned_cells_come_out_of_graphviz_at_one_place(cell):
    cells = [(getattr(getattr(genotypes, a), cell), getattr(getattr(genotypes, a), cell + '_concat'))
             for a in ARCHS]
    layout = fixed_layout(cells, f'{cell} cell')
    drawn = []
    for ops, concat in cells:
        graph = pinned_cell_graph(layout, ops, concat)
        out = json.loads(graph.pipe(format='json', engine='neato', neato_no_op=2))
        names = [o['name'] for o in out['objects']]
        drawn.append(({o['name']: o['pos'] for o in out['objects']},
                      sorted((names[e['tail']], names[e['head']], e.get('label', ''))
                             for e in out['edges'])))
    positions = [p for p, _ in drawn]
    assert set(positions[0]) == {'title', 'c_{k-2}', 'c_{k-1}', '0', '1', '2', '3', 'c_{k}'}
    assert all(p == positions[0] for p in positions)
    assert len({tuple(edges) for _, edges in drawn}) == len(ARCHS)  # the cells differ


@needs_dot
def test_a_layout_must_hold_the_cell_drawn_with_it():
    v1, v2 = genotypes.DARTS_V1, genotypes.DARTS_V2
    layout = fixed_layout([(v1.reduce, v1.reduce_concat)])
    with pytest.raises(ValueError, match='c_{k-1}->1#0 is not in the layout'):
        pinned_cell_graph(layout, v2.normal, v2.normal_concat)


def test_directory_without_history_fails_with_one_line(capsys, tmp_path):
    assert main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith('error: ') and 'has no history.json' in err
    assert err.count('\n') == 1 and 'Traceback' not in err
    assert list(tmp_path.iterdir()) == []


def test_bad_alpha_shape_is_a_user_error(tmp_path):
    history = _write_history(tmp_path)
    history[1]['softmax_alphas_reduce'] = [[0.5, 0.5]] * 14
    (tmp_path / 'history.json').write_text(json.dumps(history))
    with pytest.raises(UserError, match='softmax_alphas_reduce .* one column per op'):
        evolution.render_evolution(tmp_path)


def test_record_without_genotype_is_a_user_error(tmp_path):
    history = _write_history(tmp_path)
    del history[2]['genotype']
    (tmp_path / 'history.json').write_text(json.dumps(history))
    with pytest.raises(UserError, match='record 2: lacks genotype'):
        evolution.load_history(tmp_path)


def test_alpha_series_keeps_epochs_edges_ops(tmp_path):
    history = _write_history(tmp_path)
    series = evolution.alpha_series(history, 'normal')
    assert series.shape == (3, 14, len(PRIMITIVES))
    assert series[2, 5, 3] == history[2]['softmax_alphas_normal'][5][3]
    np.testing.assert_allclose(series.sum(axis=2), 1.0)


# --------------------------------------------------------------------------- DAAS records

DAAS_OPS = PRIMITIVES[1:]  # no 'none'
EPOCHS = 3


def _daas_history(directory):
    """Records as a DAAS search writes them: 7-op alphas, betas of nodes 1..3, genotypes
    derived from both."""
    rng = np.random.default_rng(1)
    history = []
    for e in range(EPOCHS):
        record = {'epoch': e + 1, 'valid_acc': 0.3 + e / 10, 'primitives': list(DAAS_OPS)}
        for cell in ('normal', 'reduce'):
            record[f'softmax_alphas_{cell}'] = softmax(rng.normal(size=(14, 7))).tolist()
            record[f'softmax_betas_{cell}'] = [softmax(rng.normal(size=n)).tolist() for n in (3, 4, 5)]
        g = genotype_from_weights(record['softmax_alphas_normal'], record['softmax_alphas_reduce'],
                                  DAAS_OPS, record['softmax_betas_normal'],
                                  record['softmax_betas_reduce'])
        record['genotype'] = genotype_to_json(g)
        history.append(record)
    (directory / 'history.json').write_text(json.dumps(history))
    return history


def _png_size(path):
    from PIL import Image

    with Image.open(path) as im:
        im.load()  # decodes the whole file: a truncated PNG fails here
        return im.format, im.size


@needs_dot
@pytest.mark.slow
def test_main_draws_a_daas_search(capsys, tmp_path):
    from PIL import Image

    history = _daas_history(tmp_path)
    assert main([str(tmp_path)]) == 0
    printed = capsys.readouterr().out.split()
    assert [p.rsplit('/', 1)[1] for p in printed] == [
        'networks.gif', 'alphas_normal.png', 'alphas_reduce.png', 'betas_normal.png',
        'betas_reduce.png']
    with Image.open(tmp_path / 'networks.gif') as gif:
        assert gif.n_frames == EPOCHS
    for cell in ('normal', 'reduce'):
        for name, figure in (('alphas', evolution.alphas_figure), ('betas', evolution.betas_figure)):
            inches = figure(history, cell).get_size_inches()
            assert _png_size(tmp_path / f'{name}_{cell}.png') == (
                'PNG', tuple(int(round(v)) for v in inches * 90))
    # one plot per beta node side by side: a wide strip
    assert _png_size(tmp_path / 'betas_normal.png')[1] == (972, 288)  # 3 x 3.6 by 3.2 inches


def test_alphas_use_the_primitives_of_the_records(tmp_path):
    history = _daas_history(tmp_path)
    series = evolution.alpha_series(history, 'reduce')
    assert series.shape == (EPOCHS, 14, 7)
    np.testing.assert_array_equal(series[1], history[1]['softmax_alphas_reduce'])
    fig = evolution.alphas_figure(history, 'normal')
    legend = next(ax.get_legend() for ax in fig.axes if ax.get_legend() is not None)
    assert [t.get_text() for t in legend.get_texts()] == DAAS_OPS
    first_plot = fig.axes[0]
    assert len(first_plot.get_lines()) == 7
    np.testing.assert_array_equal(first_plot.get_lines()[2].get_ydata(),
                                  [r['softmax_alphas_normal'][0][2] for r in history])


def test_alpha_columns_must_match_the_primitives(tmp_path):
    history = _daas_history(tmp_path)
    history[0]['softmax_alphas_normal'] = _softmax_rows(np.random.default_rng(2))  # 8 columns
    with pytest.raises(UserError, match=r'\[edges x 7\].*"primitives" of the records '
                                        r'\(max_pool_3x3, .*dil_conv_5x5\)'):
        evolution.alpha_series(history, 'normal')
    history = _daas_history(tmp_path)
    history[2]['primitives'] = PRIMITIVES
    with pytest.raises(UserError, match='record 2, .* differ from those of record 0'):
        evolution.alpha_series(history, 'normal')
    history[2]['primitives'] = 'max_pool_3x3'
    with pytest.raises(UserError, match='record 2, must be a list of op names'):
        evolution.alpha_series(history, 'normal')


def test_beta_series_and_plot_hold_the_record_values(tmp_path):
    history = _daas_history(tmp_path)
    series = evolution.beta_series(history, 'normal')
    assert [s.shape for s in series] == [(EPOCHS, 3), (EPOCHS, 4), (EPOCHS, 5)]
    for node in range(3):
        np.testing.assert_array_equal(series[node], [r['softmax_betas_normal'][node] for r in history])
    fig = evolution.betas_figure(history, 'reduce')
    assert [ax.get_title() for ax in fig.axes] == ['node 1 (3 inputs)', 'node 2 (4 inputs)',
                                                   'node 3 (5 inputs)']
    last = fig.axes[2]
    assert [line.get_label() for line in last.get_lines()] == [
        'c_{k-2}', 'c_{k-1}', 'node 0', 'node 1', 'node 2']
    assert [t.get_text() for t in last.get_legend().get_texts()] == [
        'c_{k-2}', 'c_{k-1}', 'node 0', 'node 1', 'node 2']
    np.testing.assert_array_equal(last.get_lines()[4].get_xdata(), [1, 2, 3])
    np.testing.assert_array_equal(last.get_lines()[4].get_ydata(),
                                  [r['softmax_betas_reduce'][2][4] for r in history])


def test_records_without_betas_write_no_beta_plots(tmp_path):
    history = _write_history(tmp_path)
    assert not evolution.has_betas(history)
    assert evolution.has_betas(_daas_history(tmp_path))


@pytest.mark.parametrize('betas, message', [
    ([[0.3, 0.3, 0.4], [0.25] * 4], r'3 lists \(nodes 1..3\) of 3, 4, 5 edge weights, '
                                     r'got lengths \[3, 4\]'),
    ([[0.5, 0.5], [0.25] * 4, [0.2] * 5], r'got lengths \[2, 4, 5\]'),
    ([[0.3, 0.3, 0.4], [0.25] * 4, ['a'] * 5], 'got non-numeric entries'),
    (0.5, 'got non-numeric entries'),
])
def test_malformed_betas_are_user_errors(betas, message, tmp_path):
    history = _daas_history(tmp_path)
    history[1]['softmax_betas_reduce'] = betas
    with pytest.raises(UserError, match=r'softmax_betas_reduce in history.json, record 1: expected .*' + message):
        evolution.beta_series(history, 'reduce')


def test_bad_betas_stop_main_before_any_drawing(capsys, tmp_path):
    history = _daas_history(tmp_path)
    history[2]['softmax_betas_normal'] = [[1.0]] * 3
    (tmp_path / 'history.json').write_text(json.dumps(history))
    assert main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith('error: softmax_betas_normal in history.json, record 2')
    assert err.count('\n') == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ['history.json']


def test_betas_in_some_records_only_are_a_user_error(tmp_path):
    history = _daas_history(tmp_path)
    del history[1]['softmax_betas_reduce']
    (tmp_path / 'history.json').write_text(json.dumps(history))
    with pytest.raises(UserError, match='record 1: lacks softmax_betas_reduce while other records'):
        evolution.load_history(tmp_path)


# --------------------------------------------------------------------------- 1-epoch plots

def _one_epoch_history():
    """One record as a short search leaves it: op weights within 1e-5 of uniform, and the
    signs of collapse, both cells' entropies a hair below log 8."""
    rng = np.random.default_rng(4)
    record = {'epoch': 1, 'valid_acc': 0.2, 'primitives': list(DAAS_OPS),
              'hessian_eigenvalue': 0.61, 'skip_connect': {'normal': 1, 'reduce': 2},
              'parameter_free': {'normal': 0.5, 'reduce': 0.25},
              'alpha_entropy': {'normal': np.log(7) - 2e-8, 'reduce': np.log(7) - 3e-8}}
    for cell in ('normal', 'reduce'):
        record[f'softmax_alphas_{cell}'] = softmax(1e-5 * rng.normal(size=(14, 7))).tolist()
        record[f'softmax_betas_{cell}'] = [softmax(1e-5 * rng.normal(size=n)).tolist()
                                           for n in (3, 4, 5)]
    record['genotype'] = genotype_to_json(genotype_from_weights(
        record['softmax_alphas_normal'], record['softmax_alphas_reduce'], DAAS_OPS,
        record['softmax_betas_normal'], record['softmax_betas_reduce']))
    return [record]


def _shown_ticks(axis, ticks_labels):
    low, high = sorted(axis.get_view_interval())
    return [label.get_text() for tick, label in zip(axis.get_majorticklocs(), ticks_labels)
            if low <= tick <= high]


@pytest.mark.parametrize('figure', [
    lambda h: evolution.alphas_figure(h, 'normal'),
    lambda h: evolution.betas_figure(h, 'reduce'),
    evolution.collapse_figure,
], ids=['alphas', 'betas', 'collapse'])
def test_one_epoch_plots_have_whole_epoch_ticks_and_no_offset(figure):
    fig = figure(_one_epoch_history())
    fig.savefig(io.BytesIO(), format='png')  # tick labels and offsets are set while drawing
    plots = [ax for ax in fig.axes if ax.axison]
    labelled = 0
    for ax in plots:
        shown = _shown_ticks(ax.xaxis, ax.get_xticklabels())
        if shown:  # plots above the bottom row share the ticks but hide their labels
            labelled += 1
            assert shown == ['1']
        assert ax.xaxis.get_offset_text().get_text() == ''
        assert ax.yaxis.get_offset_text().get_text() == ''
        values = _shown_ticks(ax.yaxis, ax.get_yticklabels())
        # the y labels alone tell the values apart, in plain decimals
        assert all(re.fullmatch(r'\d+(\.\d+)?', v) for v in values)
        assert len(set(values)) == len(values)
    assert labelled >= 2
