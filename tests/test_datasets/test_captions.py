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
