# Copyright (c) mmssl contributors. All rights reserved.
"""Image reading and writing: integer pixels of 32-bit images (``I`` mode:
8-bit or 16-bit values), palette images with a transparent colour, the
smallest size, the mask threshold, tensors to bytes, and the all-or-nothing
writer of the outputs."""
import numpy as np
import pytest
import torch
from PIL import Image

from mmssl.utils import image_io
from mmssl.utils.image_io import load_fashion_image


def _int_image(path, arr):
    """A TIFF of 32-bit integer pixels (read back in Pillow's ``I`` mode)."""
    Image.fromarray(arr.astype(np.int32)).save(path)
    assert Image.open(path).mode == 'I'
    return str(path)


def test_integer_pixels_are_read_as_8_or_16_bits(tmp_path):
    gray = np.random.RandomState(0).randint(0, 256, (16, 16))
    gray[0, :2] = 0, 255  # the whole 8-bit range
    Image.fromarray(gray.astype(np.uint8)).save(tmp_path / 'g.png')
    ref = load_fashion_image(str(tmp_path / 'g.png'), 16)
    # values up to 255: 8-bit pixels, kept as they are
    eight = load_fashion_image(_int_image(tmp_path / 'i8.tiff', gray), 16)
    torch.testing.assert_close(eight, ref)
    # up to 65535: 16-bit pixels, scaled by 255 / 65535
    sixteen = _int_image(tmp_path / 'i16.tiff', gray * 257)
    torch.testing.assert_close(load_fashion_image(sixteen, 16), ref)
    arr = np.full((16, 16), 256)
    arr[0, 0] = 0
    x = load_fashion_image(_int_image(tmp_path / 'i256.tiff', arr), 16)
    assert x[0, :, 0, 0].tolist() == [-1.] * 3
    x[0, :, 0, 0] = 1 / 127.5 - 1  # 256 is pixel 1 of 255
    torch.testing.assert_close(x, torch.full_like(x, 1 / 127.5 - 1))


@pytest.mark.parametrize('value', [-5, 70000])
def test_integer_pixels_outside_16_bits_are_refused(tmp_path, value):
    arr = np.zeros((16, 16))
    arr[3, 4] = value
    path = _int_image(tmp_path / 'bad.tiff', arr)
    lo, hi = min(value, 0), max(value, 0)
    with pytest.raises(
            ValueError,
            match=rf'bad.tiff: 32-bit integer pixels \(range '
            rf'{lo} \.\. {hi}\)'):
        load_fashion_image(path, 16)


def test_a_transparent_palette_colour_becomes_white(tmp_path):
    index = np.zeros((16, 16), np.uint8)
    index[:, 8:] = 1
    img = Image.fromarray(index, 'P')
    img.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    img.save(tmp_path / 'p.png', transparency=1)
    x = load_fashion_image(str(tmp_path / 'p.png'), 16)[0]
    red = torch.tensor([1., -1., -1.])[:, None, None]
    assert torch.equal(x[:, :, :7], red.expand(3, 16, 7))
    assert torch.equal(x[:, :, 9:], torch.ones(3, 16, 7))  # not blue
    # a transparent grey level or RGB colour, too
    grey = np.zeros((16, 16), np.uint8)
    grey[:, 8:] = 200
    Image.fromarray(grey).save(tmp_path / 'l.png', transparency=200)
    rgb = np.stack([index * 0, index * 0, index * 255], -1)
    Image.fromarray(rgb).save(tmp_path / 'rgb.png', transparency=(0, 0, 255))
    for name in ('l.png', 'rgb.png'):
        z = load_fashion_image(str(tmp_path / name), 16)[0]
        assert torch.equal(z[:, :, 9:], torch.ones(3, 16, 7))
        assert z[:, :, :7].eq(-1).all()  # black stays black
    # without transparency the palette colours are kept
    img.save(tmp_path / 'q.png')
    y = load_fashion_image(str(tmp_path / 'q.png'), 16)[0]
    assert torch.equal(
        y[:, :, 9:],
        torch.tensor([-1., -1., 1.])[:, None, None].expand(3, 16, 7))


@pytest.mark.parametrize('size', [(40, 4), (4, 40)])
def test_an_image_thin_on_one_side_is_too_small(tmp_path, size):
    Image.new('RGB', size).save(tmp_path / 'thin.png')
    with pytest.raises(
            ValueError, match=r'too small \(' + f'{size[0]}x{size[1]}'):
        load_fashion_image(str(tmp_path / 'thin.png'), 16)


def test_eight_pixels_a_side_are_enough(tmp_path):
    Image.new('RGB', (8, 30), (255, 0, 0)).save(tmp_path / 'eight.png')
    x = load_fashion_image(str(tmp_path / 'eight.png'), 8)
    assert x.shape == (1, 3, 8, 8) and x[0, 0].eq(1).all()


def test_mask_threshold_is_mid_grey(tmp_path):
    arr = np.full((8, 16), 127, np.uint8)
    arr[:, 8:] = 128
    Image.fromarray(arr).save(tmp_path / 'm.png')
    mask = image_io.load_mask_image(str(tmp_path / 'm.png'), 8)
    assert mask.shape == (1, 1, 8, 8)
    # 127 is below mid-grey (127.5), 128 above; resized 16 -> 8 columns
    assert mask[0, 0, :, :3].eq(0).all() and mask[0, 0, :, 5:].eq(1).all()


def test_to_uint8_channels_last_clamped_and_grey_repeated():
    img = torch.stack([
        torch.tensor([[-1., -0.5], [0., 1.]]),
        torch.tensor([[-3., 2.], [0.5, -1.]]),  # out of range: clamped
        torch.zeros(2, 2)
    ]).requires_grad_()  # a tensor of a graph is read without its graph
    arr = image_io.to_uint8(img)
    assert arr.shape == (2, 2, 3) and arr.dtype == np.uint8
    assert arr[..., 0].tolist() == [[0, 64], [128, 255]]  # rounded
    assert arr[..., 1].tolist() == [[0, 255], [191, 0]]
    assert arr[..., 2].tolist() == [[128, 128], [128, 128]]
    grey = image_io.to_uint8(torch.tensor([[[-1., 1.], [1., -1.]]]))
    assert grey.tolist() == [[[0] * 3, [255] * 3], [[255] * 3, [0] * 3]]


def test_write_outputs_all_or_nothing(tmp_path):
    out = tmp_path / 'a' / 'b'
    img = torch.tensor([[[-1., 1.]]]).expand(3, 4, 2)
    paths = image_io.write_outputs(
        str(out), {
            'x.png': img,
            'metrics.json': dict(score=1.5)
        })
    assert paths == [str(out / 'x.png'), str(out / 'metrics.json')]
    assert np.asarray(Image.open(
        paths[0])).tolist() == [[[0] * 3, [255] * 3]] * 4
    assert (out / 'metrics.json').read_text() == '{\n  "score": 1.5\n}'
    assert sorted(p.name for p in out.iterdir()) == ['metrics.json', 'x.png']
    # again into the same folder; a picture that cannot be encoded leaves
    # the earlier files and no temporary folder behind
    with pytest.raises(RuntimeError):
        image_io.write_outputs(
            str(out),
            {
                'metrics.json': dict(score=2.),
                'y.png': torch.zeros(2, 2)  # no channel axis
            })
    assert (out / 'metrics.json').read_text() == '{\n  "score": 1.5\n}'
    assert sorted(p.name for p in out.iterdir()) == ['metrics.json', 'x.png']
    image_io.write_outputs(str(out), {'x.png': -img})
    assert np.asarray(Image.open(out / 'x.png'))[0, 0].tolist() == [255] * 3
    with pytest.raises(NotADirectoryError, match='is a file'):
        image_io.write_outputs(str(out / 'x.png'), {'z.png': img})
