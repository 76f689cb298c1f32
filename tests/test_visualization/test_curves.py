# Copyright (c) mmssl contributors. All rights reserved.
"""mmssl.visualization.curves: a chart file, the caller's backend kept."""
import matplotlib
import numpy as np
from PIL import Image

from mmssl.visualization import plot_curves


def test_plot_curves_writes_a_png(tmp_path):
    backend = matplotlib.get_backend()
    path = str(tmp_path / 'curves.png')
    out = plot_curves(
        {
            'a': ([0, 1, 2], [10, 20, 30]),
            'b': (np.arange(3), np.array([5., 15., 25.]))
        },
        path,
        xlabel='time (s)',
        ylabel='top-1 (%)',
        hlines={'target': 25.0},
        figsize=(3, 2),
        dpi=50)
    assert out == path
    with Image.open(path) as img:
        assert img.size == (150, 100)
        pixels = np.asarray(img.convert('RGB'))
    assert pixels.std() > 0  # something was drawn
    assert matplotlib.get_backend() == backend


def test_plot_curve_panels_one_panel_an_entry(tmp_path):
    from mmssl.visualization import plot_curve_panels
    backend = matplotlib.get_backend()
    path = str(tmp_path / 'panels.png')
    curves = {'CoOp': ([1, 2, 3], [60., 62., 65.])}
    out = plot_curve_panels({
        'base': curves,
        'novel': curves,
        'hm': {}
    },
                            path,
                            xlabel='epoch',
                            hlines={'hm': {
                                'zero-shot': 44.0
                            }},
                            panel_size=(2, 2),
                            dpi=50)
    assert out == path
    with Image.open(path) as img:
        assert img.size == (300, 100)  # three 2 x 2 inch panels at 50 dpi
        pixels = np.asarray(img.convert('RGB'))
    # each third of the picture has a chart in it
    assert all(part.std() > 0 for part in np.array_split(pixels, 3, axis=1))
    assert matplotlib.get_backend() == backend
