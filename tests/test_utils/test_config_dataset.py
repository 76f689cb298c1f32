# Copyright (c) mmssl contributors. All rights reserved.
"""mmssl.utils.config.config_dataset: a config's data set per split."""
import pytest
from mmengine.config import Config

from mmssl.datasets import make_embedded_data
from mmssl.utils.config import config_dataset


def _cfg(root):
    return Config(
        dict(
            default_scope='mmpretrain',
            train_dataloader=dict(
                dataset=dict(
                    type='mmssl.EmbeddedClsDataset',
                    data_root=str(root),
                    split='train',
                    pipeline=[dict(type='PackInputs')])),
            test_dataloader=dict(
                dataset=dict(
                    type='mmssl.EmbeddedClsDataset',
                    data_root=str(root),
                    split='val',
                    pipeline=[dict(type='PackInputs')]))))


def test_builds_each_split_in_the_config_scope(tmp_path):
    make_embedded_data(str(tmp_path), num_train=6, num_val=2)
    cfg = _cfg(tmp_path)
    assert len(config_dataset(cfg)) == 6
    assert len(config_dataset(cfg, 'test')) == 2


def test_config_dataset_names_the_loaders_it_has(tmp_path):
    cfg = _cfg(tmp_path / 'none')
    with pytest.raises(ValueError, match='split must be one of'):
        config_dataset(cfg, 'training')
    with pytest.raises(
            ValueError,
            match='no `val_dataloader.dataset`.*'
            'its loaders: train, test'):
        config_dataset(cfg, 'val')
