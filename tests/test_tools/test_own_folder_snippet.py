# Copyright (c) mmssl contributors. All rights reserved.
"""The README's "own folder" config works when saved anywhere.

The snippet is read out of README.md, so the README and this test cannot
drift apart.
"""
import os.path as osp
import re

import numpy as np
import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope
from PIL import Image

from mmssl.engine.runner_utils import (ConfigFileError, load_config,
                                       mmssl_configs_root)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def readme_snippet() -> str:
    """The README's python block that pretrains on an own folder."""
    with open(osp.join(REPO, 'README.md')) as f:
        blocks = re.findall(r'```python\n(.*?)```', f.read(), re.S)
    found = [b for b in blocks if 'mmssl.UnlabeledImageFolder' in b]
    assert len(found) == 1, 'one own-folder snippet in README.md'
    assert '/path/to/images' in found[0]
    return found[0]


@pytest.fixture
def my_images(tmp_path):
    rng = np.random.default_rng(0)
    for i, sub in enumerate(['', 'holiday', 'holiday/day2']):
        folder = tmp_path / 'my_images' / sub
        folder.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f'img{i}.jpg')
    return tmp_path / 'my_images'


def test_readme_snippet_works_from_anywhere(tmp_path, my_images, monkeypatch):
    elsewhere = tmp_path / 'projects' / 'mine'
    elsewhere.mkdir(parents=True)
    config = elsewhere / 'my_mae.py'
    config.write_text(readme_snippet().replace('/path/to/images',
                                               str(my_images)))
    # neither the repository nor the config's folder is the working dir
    monkeypatch.chdir(tmp_path)

    cfg = load_config(str(config))
    assert cfg.model.backbone.type == 'mmssl.MAEViT'  # from the base
    assert cfg.train_cfg.max_epochs == 30
    dataset_cfg = cfg.train_dataloader.dataset
    assert dataset_cfg.type == 'mmssl.UnlabeledImageFolder'
    assert 'split' not in dataset_cfg  # _delete_ replaced the base's
    assert dataset_cfg.pipeline[1].type == 'RandomResizedCrop'

    init_default_scope(cfg.default_scope)
    from mmpretrain.registry import DATASETS
    dataset = DATASETS.build(dataset_cfg)
    assert len(dataset) == 3
    assert dataset[2]['inputs'].shape == (3, 64, 64)
    # plain mmengine loading works as well once mmssl's tools are imported
    assert Config.fromfile(str(config)).train_dataloader.dataset.data_root \
        == str(my_images)


def test_mmssl_prefix_messages(tmp_path):
    root = mmssl_configs_root()
    assert osp.realpath(root) == osp.realpath(osp.join(REPO, 'configs'))
    # CONFIG itself may be written with the prefix
    cfg = load_config('mmssl::mae/mae_vit-tiny-p8_1xb64-coslr-30e_embedded.py')
    assert cfg.model.backbone.type == 'mmssl.MAEViT'
    bad = tmp_path / 'typo.py'
    bad.write_text(
        "_base_ = 'mmssl::mae/mae_vit-tiny-p8_1xb64-coslr-30e_embeded.py'\n")
    with pytest.raises(ConfigFileError) as exc:
        load_config(str(bad))
    msg = str(exc.value)
    assert "'mmssl::mae/mae_vit-tiny-p8_1xb64-coslr-30e_embeded.py'" in msg
    assert 'did you mean' in msg
    assert 'mae_vit-tiny-p8_1xb64-coslr-30e_embedded.py' in msg
    assert f'relative to {root!r}' in msg
