# Copyright (c) mmssl contributors. All rights reserved.
"""mmssl.visualization.annotate: boxes, captions, labelled rows."""
import numpy as np
from PIL import Image

from mmssl.visualization import caption, draw_boxes, labelled_rows


def test_draw_boxes_in_place():
    tile = Image.new('RGB', (20, 20), 'black')
    out = draw_boxes(tile, [(2, 3, 10, 8)], ['a'], [(255, 0, 0)])
    assert out is tile
    arr = np.asarray(tile)
    assert arr[3, 2].tolist() == [255, 0, 0]  # top-left corner
    assert arr[10, 11].tolist() == [255, 0, 0]  # bottom-right corner
    assert arr[19, 19].tolist() == [0, 0, 0]


def test_caption_adds_a_white_strip():
    tile = Image.new('RGB', (30, 20), 'black')
    out = caption(tile, 'a long caption that gets cut', height=10)
    assert out.size == (30, 30)
    arr = np.asarray(out)
    assert (arr[:20] == 0).all()
    assert (arr[20:] < 255).any() and arr[20:].mean() > 127  # text on white


def test_labelled_rows_layout():
    tiles = [Image.new('RGB', (8, 6), 'black') for _ in range(3)]
    grid = labelled_rows([('one', tiles[:2]), ('two', tiles[2:])],
                         header=40,
                         gap=2)
    # widest row: 2 tiles of 8 + 2 px; 2 rows of 6 + 2 px
    assert grid.size == (40 + 2 * 10, 2 * 8)
    arr = np.asarray(grid)
    assert (arr[0:6, 40:48] == 0).all() and (arr[0:6, 50:58] == 0).all()
    assert (arr[8:14, 40:48] == 0).all() and (arr[8:14, 50:58] == 255).all()
    assert (arr[:, :40] < 255).any()  # the row names
