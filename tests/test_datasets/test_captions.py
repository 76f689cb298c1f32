# Copyright (c) mmssl contributors. All rights reserved.
"""Generated captions of the embedded images."""
import os.path as osp

import numpy as np
from PIL import Image

from mmssl.datasets import EmbeddedCaptionDataset, make_embedded_data
from mmssl.datasets.captions import (colour_name, describe_cls_image,
                                     make_captions)


def test_colour_names():
    assert colour_name((250, 10, 10)) == 'red'
    assert colour_name((10, 10, 240)) == 'blue'
    assert colour_name((20, 200, 20)) == 'green'
    assert colour_name((5, 5, 5)) == 'black'
    assert colour_name((128, 128, 128)) == 'gray'


def test_captions_replay_the_stored_images(tmp_path):
    root = str(tmp_path / 'emb')
    make_embedded_data(root, seed=3, img_size=32, num_train=9, num_val=9)
    for idx in (0, 4, 8):
        desc = describe_cls_image(3, 'train', idx, 32)
        stored = np.asarray(
            Image.open(
                osp.join(root, 'cls', 'train', desc['shape'],
                         f'train_{idx:05d}.png')))
        assert (stored == desc['image']).all()
        caps = make_captions(desc)
        assert len(caps) == 5 and all(desc['shape'] in c for c in caps)
    ds = EmbeddedCaptionDataset(
        data_root=root, split='train', random_caption=False)
    info = ds.get_data_info(7)
    assert info['caption'] == f"a photo of a {info['description']['shape']}."
    assert info['gt_label'] == 7
    assert osp.isfile(osp.join(root, 'cls', 'meta', 'captions_train.json'))
    # cached: a second data set reads the same descriptions
    again = EmbeddedCaptionDataset(data_root=root, split='train')
    assert again.get_data_info(7)['captions'] == info['captions']


def test_colour_name_thresholds():
    import colorsys

    # value below 1/4 is black (63.75 / 255 is exactly 1/4: not black)
    assert colour_name((63, 63, 63)) == 'black'
    assert colour_name((63.75, 63.75, 63.75)) == 'gray'
    assert colour_name((100, 100, 100)) == 'gray'
    # saturation below 0.2 is white / gray (above / at most 0.8 value)
    assert colour_name((204, 204, 204)) == 'gray'
    assert colour_name((205, 205, 205)) == 'white'
    assert colour_name((255, 255, 255)) == 'white'
    assert colour_name((255, 205, 205)) == 'white'  # s = 0.196
    assert colour_name((255, 200, 200)) == 'red'
    # hue bounds, half a degree either side
    names = [
        'red', 'orange', 'yellow', 'green', 'cyan', 'blue', 'purple', 'pink',
        'red'
    ]
    for k, bound in enumerate((15, 45, 70, 165, 200, 255, 290, 335)):
        for hue, name in ((bound - .5, names[k]), (bound + .5, names[k + 1])):
            rgb = [255 * c for c in colorsys.hsv_to_rgb(hue / 360, 1, 1)]
            assert colour_name(rgb) == name, (hue, rgb)


def test_description_of_a_hand_made_scene(monkeypatch):
    """The main shape is the first of the image's class wider than a fifth
    of the side; its colour is the mean of its visible pixels, its size
    'large' above 0.35 of the side; the other objects are distractors."""
    from mmssl.datasets import captions
    from mmssl.datasets.embedded_shapes import SHAPE_CLASSES, TEXTURES
    S = 20
    label = 3  # image 3 of the split has class 3
    objects = [
        dict(label=label, radius=0.2 * S),  # not wider than a fifth
        dict(label=5, radius=0.5 * S),
        dict(label=label, radius=0.35 * S),  # the main shape
        dict(label=label, radius=0.4 * S),
    ]
    img = np.zeros((S, S, 3), np.uint8)
    img[...] = (0, 0, 250)  # blue elsewhere
    inst = np.zeros((S, S), np.int64)
    img[2:8, 2:8] = (250, 10, 10)  # object 2 (id 3) is red where visible
    inst[2:8, 2:8] = 3
    img[10:12, 10:12] = (10, 200, 10)
    inst[10:12, 10:12] = 2  # object 1 (id 2) is green

    def render(rng, objs, size):
        for k in range(len(objs)):  # object k gets texture k
            rng.choice(len(TEXTURES), p=np.eye(len(TEXTURES))[k])
        return img, inst, None

    monkeypatch.setattr(captions, 'sample_cls_scene',
                        lambda rng, lab, size: objects)
    monkeypatch.setattr(captions, 'render_scene', render)
    desc = describe_cls_image(0, 'train', label, S)
    assert desc['label'] == label and desc['shape'] == SHAPE_CLASSES[label]
    assert desc['colour'] == 'red'
    assert desc['size'] == 'small'  # 0.35 of the side is not above it
    assert desc['distractors'] == [
        SHAPE_CLASSES[o['label']] for o in objects[:2] + objects[3:]
    ]
    assert desc['texture'] == TEXTURES[2]
    objects[2]['radius'] = 0.36 * S
    assert describe_cls_image(0, 'train', label, S)['size'] == 'large'
    img[2:8, 2:8] = (120, 120, 120)  # the mean, not the sum: gray
    assert describe_cls_image(0, 'train', label, S)['colour'] == 'gray'
    # a main shape hidden behind others: the whole image's mean colour
    inst[inst == 3] = 4
    assert describe_cls_image(0, 'train', label, S)['colour'] == colour_name(
        img.reshape(-1, 3).mean(0))


def test_caption_cache_is_read_only_when_key_and_count_match(tmp_path):
    """The cached descriptions are used when both the generation key and the
    number of images match; a cache of another key or another count is
    rebuilt from the images."""
    import json

    from mmssl.datasets.captions import _load_descriptions
    root = str(tmp_path / 'emb')
    make_embedded_data(root, seed=3, img_size=32, num_train=4, num_val=4)
    fresh = _load_descriptions(root, 'train')
    assert len(fresh) == 4
    path = osp.join(root, 'cls', 'meta', 'captions_train.json')
    with open(path) as f:
        stored = json.load(f)
    marked = [dict(d, shape='marker') for d in fresh]

    def write(key, items):
        with open(path, 'w') as f:
            json.dump(dict(key=key, items=items), f)

    # same key and count: the cache is read as it is
    write(stored['key'], marked)
    assert [d['shape']
            for d in _load_descriptions(root, 'train')] == ['marker'] * 4
    # same key, one item fewer: rebuilt
    write(stored['key'], marked[:3])
    assert _load_descriptions(root, 'train') == fresh
    # another key, the right count: rebuilt
    write(dict(stored['key'], seed=99), marked)
    assert _load_descriptions(root, 'train') == fresh
    # no key at all: rebuilt
    with open(path, 'w') as f:
        json.dump(dict(items=marked), f)
    assert _load_descriptions(root, 'train') == fresh
    # and the rebuilt cache was written back
    with open(path) as f:
        assert json.load(f)['items'] == fresh
