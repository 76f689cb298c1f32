# Copyright (c) mmssl contributors. All rights reserved.
"""mmssl.visualization.grids: layouts, gaps, overlays and colours."""
import numpy as np
import pytest
import torch

from mmssl.visualization import (denormalize_images, grey_out, label_palette,
                                 make_grid, prediction_grid,
                                 reconstruction_grid, tile_images)


def _cell(value, h=3, w=4):
    return np.full((h, w, 3), value, np.uint8)


def test_tile_images_layout_gaps_and_border():
    rows = [[_cell(1), _cell(2)], [_cell(3), _cell(4)]]
    grid = tile_images(rows, pad=2)
    # 2 rows of 3 px + one 2-px gap; 2 cells of 4 px + one 2-px gap
    assert grid.shape == (8, 10, 3) and grid.dtype == np.uint8
    assert (grid[:3, :4] == 1).all() and (grid[:3, 6:] == 2).all()
    assert (grid[5:, :4] == 3).all() and (grid[5:, 6:] == 4).all()
    assert (grid[3:5] == 255).all() and (grid[:, 4:6] == 255).all()
    framed = tile_images(rows, pad=2, border=True, fill=0)
    assert framed.shape == (12, 14, 3)
    assert (framed[:2] == 0).all() and (framed[:, :2] == 0).all()
    assert (framed[2:5, 2:6] == 1).all()


def test_tile_images_refuses_ragged_input():
    with pytest.raises(ValueError, match='numbers of cells'):
        tile_images([[_cell(1), _cell(2)], [_cell(3)]])
    with pytest.raises(ValueError, match='differ in shape'):
        tile_images([[_cell(1), _cell(2, w=5)]])
    with pytest.raises(ValueError, match='at least one row'):
        tile_images([])


def test_make_grid_one_row_and_rows():
    a = torch.full((3, 4, 5), -1.)
    mask = torch.zeros(1, 4, 5)  # one channel: repeated to three
    row = make_grid([a, mask], pad=2)
    assert row.shape == (3, 4, 12)
    assert (row[:, :, :5] == -1).all() and (row[:, :, 7:] == 0).all()
    assert (row[:, :, 5:7] == 1).all()  # white gap
    two = make_grid([[a, mask], [mask, a]], pad=2)
    assert two.shape == (3, 10, 12)
    assert torch.equal(two[:, :4], row) and (two[:, 4:6] == 1).all()
    with pytest.raises(ValueError, match='differ in width'):
        make_grid([[a, a], [a]])


def test_denormalize_and_grey_out():
    mean = torch.tensor([10., 20., 30.]).view(3, 1, 1)
    std = torch.tensor([2., 2., 2.]).view(3, 1, 1)
    x = torch.ones(1, 3, 2, 2)
    img = denormalize_images(x, mean, std)
    assert img.shape == (1, 2, 2, 3) and img.dtype == np.uint8
    assert img[0, 0, 0].tolist() == [12, 22, 32]
    assert (denormalize_images(torch.full((1, 3, 2, 2), 2.)) == 255).all()
    mask = np.array([[[True, False], [False, False]]])
    out = grey_out(img, mask)
    assert out[0, 0, 0].tolist() == [127] * 3
    assert out[0, 1, 1].tolist() == [12, 22, 32]
    assert img[0, 0, 0].tolist() == [12, 22, 32]  # the input is unchanged


def test_reconstruction_grid_columns():
    inputs = torch.full((2, 3, 4, 4), 0.5)
    mask = torch.zeros(2, 1, 4, 4)
    mask[:, :, :2] = 1
    grid = reconstruction_grid(inputs, mask, torch.zeros_like(inputs),
                               torch.ones_like(inputs))
    # 2 rows and 4 columns of 4 px, 2-px gaps and border
    assert grid.shape == (2 * 6 + 2, 4 * 6 + 2, 3)
    assert (grid[2:6, 2:6] == 127).all()  # original: 0.5 * 255
    assert (grid[2:4, 8:12] == 127).all()  # masked rows grey
    assert (grid[2:6, 14:18] == 0).all()  # reconstruction
    assert (grid[2:6, 20:24] == 255).all()  # pasted


def test_label_palette_is_fixed():
    palette = label_palette(5)
    assert palette.shape == (5, 3) and (palette[0] == 0).all()
    assert (palette[1:] >= 64).all()
    assert np.array_equal(palette, label_palette(5))


def test_prediction_grid_layout_and_colours():
    images = np.full((2, 4, 4, 3), 7, np.uint8)
    labels = np.zeros((2, 4, 4), np.uint8)
    labels[:, 0, 0] = 255
    preds = {'a': np.ones((2, 4, 4), np.int64), 'b': np.zeros((2, 4, 4))}
    grid = prediction_grid(images, labels, preds, num_classes=3, scale=1)
    # 2 rows of 4 px + 2-px gap; 4 cells of 4 px + 3 gaps of 2 px
    assert grid.shape == (10, 22, 3)
    assert (grid[:4, :4] == 7).all()  # the image
    assert (grid[0, 6] == 255).all()  # label 255: white
    assert (grid[1, 7] == 0).all()  # background: black
    assert grid[0, 12:16].max() > 0  # class 1: a colour
    assert (grid[:4, 18:22] == 0).all()  # prediction 'b': background
    assert prediction_grid(images, labels, preds, 3).shape == (18, 38, 3)
