import json
import shutil

import numpy as np
import pytest

import genotypes
from darts_paddle import evolution
from darts_paddle.errors import UserError
from darts_paddle.genotype import PRIMITIVES, genotype_to_json
from darts_paddle.visualize import main

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


def test_edge_titles_follow_the_row_order():
    titles = evolution.edge_titles(4)
    assert len(titles) == 14
    assert titles[:2] == ['c_{k-2} → node 0', 'c_{k-1} → node 0']
    assert titles[4] == 'node 0 → node 1'  # node 1 reads states 0, 1, 2
    assert titles[-1] == 'node 2 → node 3'


@needs_dot
def test_main_draws_the_evolution_of_a_search(capsys, tmp_path):
    from PIL import Image, ImageChops

    _write_history(tmp_path)
    assert main([str(tmp_path)]) == 0
    printed = capsys.readouterr().out.split()
    assert [p.rsplit('/', 1)[1] for p in printed] == ['networks.gif', 'alphas_normal.png',
                                                      'alphas_reduce.png']
    with Image.open(tmp_path / 'networks.gif') as gif:
        assert gif.n_frames == len(ARCHS)
        frames = []
        for k in range(gif.n_frames):
            gif.seek(k)
            frames.append(gif.convert('RGB'))
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
