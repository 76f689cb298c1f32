# Copyright (c) mmssl contributors. All rights reserved.
"""mmssl.visualization.browse: tiles of packed samples, by pixel."""
import numpy as np
import pytest
import torch
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData
from mmpretrain.structures import DataSample

from mmssl.visualization.browse import (auto_scale, browse_grid, image_tile,
                                        sample_tiles)
from mmssl.visualization.grids import label_palette


def _solid(c0, c1, c2, size=8):
    img = torch.zeros(3, size, size, dtype=torch.uint8)
    img[0], img[1], img[2] = c0, c1, c2
    return img


def test_image_tile_swaps_bgr_and_keeps_rgb():
    img = _solid(200, 10, 30)  # B, G, R as packed
    assert np.asarray(image_tile(img))[0, 0].tolist() == [30, 10, 200]
    assert np.asarray(image_tile(img, bgr=False))[0, 0].tolist() == \
        [200, 10, 30]


def test_image_tile_grey_and_float():
    grey = torch.arange(16, dtype=torch.uint8).reshape(1, 4, 4)
    tile = np.asarray(image_tile(grey))
    assert tile.shape == (4, 4, 3)
    assert (tile[..., 0] == tile[..., 2]).all()
    assert tile[1, 2].tolist() == [6, 6, 6]
    x = torch.linspace(-1, 3, 16).reshape(1, 4, 4)
    tile = np.asarray(image_tile(x))
    assert tile[0, 0, 0] == 0 and tile[3, 3, 0] == 255
    assert tile[0, 1, 0] == round(255 / 15)


@pytest.mark.parametrize('bad', [
    torch.zeros(4, 8, 8),
    torch.zeros(8, 8),
    torch.zeros(16000),
    {
        'input_ids': torch.zeros(4)
    },
])
def test_image_tile_refuses_what_is_not_an_image(bad):
    with pytest.raises(ValueError, match='not a \\(C, H, W\\) image'):
        image_tile(bad)


def test_views_side_by_side_with_the_class_caption():
    views = [_solid(0, 0, 255), _solid(255, 0, 0)]
    plain = sample_tiles(dict(inputs=views, data_samples=DataSample()))
    assert len(plain) == 2
    assert [t.size for t in plain] == [(8, 8), (8, 8)]
    assert np.asarray(plain[0])[0, 0].tolist() == [255, 0, 0]
    assert np.asarray(plain[1])[0, 0].tolist() == [0, 0, 255]
    labelled = sample_tiles(
        dict(inputs=views, data_samples=DataSample().set_gt_label(1)),
        classes=['cat', 'dog'],
        scale=3)
    # 3x the image, then a 14-pixel caption strip; the image above it kept
    assert [t.size for t in labelled] == [(24, 38), (24, 38)]
    assert np.asarray(labelled[0])[23, 23].tolist() == [255, 0, 0]
    strip = np.asarray(labelled[0])[24:]
    assert (strip < 128).any() and (strip == 255).any()  # text on white


@pytest.mark.parametrize('scale', [1, 2])
def test_boxes_drawn_in_their_class_colour(scale):
    """(x1, y1, x2, y2) boxes outlined in their class colour at the tile's
    scale: edges coloured, inside and outside untouched."""
    sample = DetDataSample()
    sample.gt_instances = InstanceData(
        bboxes=torch.tensor([[4., 6., 30., 20.], [33., 33., 38., 38.]]),
        labels=torch.tensor([1, 0]))
    tile = np.asarray(
        sample_tiles(
            dict(inputs=_solid(0, 0, 0, size=40), data_samples=sample),
            classes=['a', 'b'],
            scale=scale)[0])
    assert tile.shape == (40 * scale, 40 * scale, 3)
    # label k -> entry k + 1 of the palette of the 2 classes and background
    colour = [label_palette(3)[k].tolist() for k in (2, 1)]
    s = scale
    edges = dict(
        left=(15 * s, 4 * s),
        right=(15 * s, 30 * s - 1),
        top=(6 * s, 20 * s),
        bottom=(20 * s - 1, 20 * s),
        second_box=(35 * s, 33 * s))
    assert {
        k: tile[yx].tolist()
        for k, yx in edges.items()
    } == dict(
        left=colour[0],
        right=colour[0],
        top=colour[0],
        bottom=colour[0],
        second_box=colour[1])
    for yx in [(15 * s, 20 * s), (25 * s, 20 * s), (15 * s, 32 * s),
               (15 * s, 30 * s), (20 * s, 20 * s)]:  # inside and outside
        assert tile[yx].tolist() == [0, 0, 0], yx


def test_box_names_from_the_classes(monkeypatch):
    import mmssl.visualization.browse as browse
    named = []
    monkeypatch.setattr(
        browse, 'draw_boxes',
        lambda tile, boxes, names, colours: named.append(list(names)))
    sample = DetDataSample()
    sample.gt_instances = InstanceData(
        bboxes=torch.tensor([[1., 1., 4., 4.]] * 3),
        labels=torch.tensor([0, 1, 2]))
    inputs = _solid(0, 0, 0)
    sample_tiles(dict(inputs=inputs, data_samples=sample), ['a', 'b'])
    sample_tiles(dict(inputs=inputs, data_samples=sample))
    assert named == [['a', 'b', '2'], ['0', '1', '2']]


def test_pipeline_mask_greys_its_patches():
    sample = DataSample()
    sample.set_field(torch.tensor([[1, 0], [0, 0]]), 'mask')
    tile = np.asarray(
        sample_tiles(dict(inputs=_solid(255, 255, 255),
                          data_samples=sample))[0])
    assert (tile[:4, :4] == 127).all()
    assert (tile[4:, :] == 255).all() and (tile[:, 4:] == 255).all()
    for shape in [(3, 3), (2, 3), (3, 2)]:
        sample.set_field(torch.ones(*shape), 'mask')
        with pytest.raises(
                ValueError,
                match=f'{shape[0]}x{shape[1]} patch mask does not divide'):
            sample_tiles(dict(inputs=_solid(1, 1, 1), data_samples=sample))


def test_one_tile_per_clone_mask():
    sample = DataSample()
    sample.set_field(
        torch.tensor([[[1, 0], [0, 0]], [[0, 0], [0, 1]]]), 'mask')
    tiles = [
        np.asarray(t) for t in sample_tiles(
            dict(inputs=[_solid(255, 255, 255)] * 2, data_samples=sample))
    ]
    assert len(tiles) == 4  # 2 views x 2 masks
    for view in (0, 2):
        assert (tiles[view][:4, :4] == 127).all()
        assert (tiles[view][4:, 4:] == 255).all()
        assert (tiles[view + 1][4:, 4:] == 127).all()
        assert (tiles[view + 1][:4, :4] == 255).all()
    sample.set_field(torch.ones(1, 1, 2, 2), 'mask')
    with pytest.raises(
            ValueError, match=r'\(M, h, w\) masks, got shape '
            r'\(1, 1, 2, 2\)'):
        sample_tiles(dict(inputs=_solid(1, 1, 1), data_samples=sample))


def test_caption_text_wrapped_before_the_class_name():
    sample = DataSample().set_gt_label(0)
    sample.set_field('a checkered green circle.', 'caption')
    tile, = sample_tiles(
        dict(inputs=_solid(0, 0, 0, size=48), data_samples=sample),
        classes=['circle'])
    # 48 px wide: 8 characters a line -> 'a', 'checkere', 'd green',
    # 'circle.': 4 lines of 14 px
    lines = len(__import__('textwrap').wrap('a checkered green circle.', 8))
    assert lines == 4 and tile.size == (48, 48 + 14 * lines)


def test_caption_names_every_label_and_skips_empty_text(monkeypatch):
    import mmssl.visualization.browse as browse
    written = []
    monkeypatch.setattr(
        browse, 'caption',
        lambda tile, text, *a, **k: written.append(text) or tile)
    multi = DataSample().set_gt_label([0, 3])
    multi.set_field('', 'caption')
    sample_tiles(
        dict(inputs=_solid(0, 0, 0, size=96), data_samples=multi),
        classes=['a', 'b', 'c'])
    assert written == ['a, 3']  # label 3 has no name: its index


def test_narrow_tiles_wrap_captions_at_four_characters():
    sample = DataSample()
    sample.set_field('ab cd ef', 'caption')
    tile, = sample_tiles(
        dict(inputs=_solid(0, 0, 0, size=12), data_samples=sample))
    assert tile.size == (12, 12 + 14 * 3)  # 'ab', 'cd', 'ef'


def test_auto_scale_reaches_96_pixels():
    assert [auto_scale(h) for h in (0, 1, 32, 48, 64, 95, 96, 224)] == \
        [96, 96, 3, 2, 2, 2, 1, 1]
    tile, = sample_tiles(dict(inputs=_solid(9, 9, 9, size=32)), scale=None)
    assert tile.size == (96, 96)


def test_browse_grid_one_row_per_sample():
    samples = [(f'#{i}', dict(inputs=[_solid(i, i, i)] * (i + 1)))
               for i in range(3)]
    grid = browse_grid(samples)
    assert grid.height == 3 * (8 + 4)
    bgr = browse_grid([('#0', dict(inputs=_solid(200, 0, 0)))])
    assert np.asarray(bgr)[0, 48].tolist() == [0, 0, 200]  # BGR by default
    assert grid.width == 48 + 3 * (8 + 4)
    with pytest.raises(ValueError, match='dict with `inputs`'):
        browse_grid([('#0', torch.zeros(3, 8, 8))])
