# Copyright (c) mmssl contributors. All rights reserved.
"""What the SubTuning pictures show: the finetuning profile (bars, pairs,
levels, axis range, labels, size) and the greedy path (steps, candidates,
the selected subset, labels, size)."""
import pytest
from PIL import Image

import mmssl.analysis.subtuning_select as sel


@pytest.fixture
def axes(monkeypatch):
    """The (figure, axes) of every picture drawn."""
    made = []
    real = sel._figure

    def figure(*args, **kwargs):
        made.append(real(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(sel, '_figure', figure)
    return made


def _lines(ax):
    return [(list(line.get_xdata()), list(line.get_ydata()))
            for line in ax.get_lines()]


def _legend(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_profile_subsets_leave_the_pairs_out_by_default():
    blocks = ['a', 'b', 'c']
    assert sel.profile_subsets(blocks) == [(), ('a', ), ('b', ), ('c', ),
                                           ('a', 'b', 'c')]
    assert sel.profile_subsets(
        blocks, pairs=True)[4:] == [('a', 'b'), ('b', 'c'), ('a', 'b', 'c')]


def test_the_profile_picture(tmp_path, axes):
    profile = dict(
        blocks=['a', 'b', 'c'],
        linear_probe=0.40,
        all_blocks=0.58,
        single=dict(a=0.55, b=0.60, c=0.50),
        pairs={
            'a+b': 0.62,
            'b+c': 0.45
        })
    path = str(tmp_path / 'p.png')
    assert sel.plot_profile(profile, path) == path
    fig, ax = axes[-1]
    assert tuple(fig.get_size_inches()) == (5., 4.)  # at least 5 wide
    assert Image.open(path).size == (600, 480)  # 120 dpi
    assert [p.get_height() for p in ax.patches] == [0.55, 0.60, 0.50]
    assert [p.get_x() + p.get_width() / 2 for p in ax.patches] == [0, 1, 2]
    pairs, probe, every = _lines(ax)
    assert pairs == ([0.5, 1.5], [0.62, 0.45])  # between their blocks
    assert probe[1] == [0.40, 0.40] and every[1] == [0.58, 0.58]
    # 10 % of the range beyond both ends: 0.40 - 0.022 .. 0.62 + 0.022
    assert ax.get_ylim() == pytest.approx((0.378, 0.642))
    ticks = ax.get_xticklabels()
    assert [t.get_text() for t in ticks] == ['a', 'b', 'c']
    assert {t.get_rotation() for t in ticks} == {45.}
    assert ax.get_title() == 'finetuning profile'
    assert _legend(ax) == [
        'consecutive pair', 'linear probe (no block)', 'all 3 blocks',
        'single block'
    ]
    # a wider picture for more blocks, at least 0.02 of margin, never
    # below 0; a given title; no pair line without pairs
    blocks = [f'b{i}' for i in range(8)]
    flat = dict(
        blocks=blocks,
        linear_probe=0.01,
        all_blocks=0.05,
        single={b: 0.05
                for b in blocks},
        pairs={})
    sel.plot_profile(flat, path, title='flat')
    fig, ax = axes[-1]
    assert tuple(fig.get_size_inches()) == pytest.approx((6.8, 4.))
    assert ax.get_ylim() == pytest.approx((0., 0.07))
    assert ax.get_title() == 'flat' and len(ax.get_lines()) == 2


def _history():
    """A greedy path from all blocks: remove c, remove a, add c, add a."""
    steps = [('start', None, ['a', 'b', 'c'], 0.61, {}),
             ('remove', 'c', ['a', 'b'], 0.62, dict(a=0.58, b=0.5, c=0.62)),
             ('remove', 'a', ['b'], 0.60, dict(a=0.60, b=0.5)),
             ('add', 'c', ['b', 'c'], 0.59, dict(a=0.55, c=0.59)),
             ('add', 'a', ['a', 'b', 'c'], 0.61, dict(a=0.61))]
    history, best = [], 0.
    for i, (action, block, subset, acc, candidates) in enumerate(steps):
        best = max(best, acc)
        history.append(
            dict(
                step=i,
                action=action,
                block=block,
                subset=subset,
                accuracy=acc,
                candidates=candidates,
                best=best))
    return dict(
        selected=['a', 'b'],
        accuracy=0.62,
        blocks=['a', 'b', 'c'],
        eps=0.01,
        start='all',
        history=history)


def test_the_greedy_picture(tmp_path, axes):
    result = _history()
    path = str(tmp_path / 'g.png')
    assert sel.plot_greedy(result, path) == path
    fig, ax = axes[-1]
    assert tuple(fig.get_size_inches()) == pytest.approx((5.5, 4.))
    assert Image.open(path).size == (660, 480)
    dots = ax.collections
    # the candidates of each step (none at the start), then the star
    assert [d.get_offsets().tolist() for d in dots[:-1]] == [[],
                                                             [[1, 0.58],
                                                              [1, 0.5],
                                                              [1, 0.62]],
                                                             [[2, 0.6],
                                                              [2, 0.5]],
                                                             [[3, 0.55],
                                                              [3, 0.59]],
                                                             [[4, 0.61]]]
    assert dots[-1].get_offsets().tolist() == [[1, 0.62]]  # the selected
    path_line, best_line = _lines(ax)
    assert path_line == ([0, 1, 2, 3, 4], [0.61, 0.62, 0.60, 0.59, 0.61])
    assert best_line[1] == [0.61, 0.62, 0.62, 0.62, 0.62]
    ticks = ax.get_xticklabels()
    assert [t.get_text()
            for t in ticks] == ['start: all', '-c', '-a', '+c', '+a']
    assert {t.get_rotation() for t in ticks} == {45.}
    assert ax.get_title() == 'greedy selection (start=all, eps=0.01)'
    assert _legend(ax) == [
        'candidates', 'greedy path', 'best so far', 'selected'
    ]
    assert dots[1].get_label() == 'candidates'  # the first with dots
    # from no block, with a title of one's own
    result['history'][0]['subset'] = []
    sel.plot_greedy(result, path, title='mine')
    _, ax = axes[-1]
    assert ax.get_xticklabels()[0].get_text() == 'start: none'
    assert ax.get_title() == 'mine'
