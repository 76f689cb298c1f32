# Copyright (c) mmssl contributors. All rights reserved.
"""Every SubTuning config builds its model (classifying a batch into its
number of classes), its trainable_blocks are valid block names of its
backbone, and the configs on the embedded data build their data sets."""
import copy
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmssl.datasets import make_embedded_data
from mmssl.models.utils import block_names, resolve_blocks
from mmssl.registry import DATASETS, MODELS

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = sorted(glob.glob(osp.join(ROOT, 'configs', 'subtuning', '*.py')))
IDS = [osp.basename(p) for p in CONFIGS]
LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


@pytest.fixture(scope='module')
def embedded_root(tmp_path_factory):
    """A small embedded data set (36 training, 18 validation images)."""
    root = str(tmp_path_factory.mktemp('embedded'))
    make_embedded_data(root, num_train=36, num_val=18)
    return root


def _dicts(cfg):
    """``cfg`` and every dict nested in it."""
    if isinstance(cfg, dict):
        yield cfg
        for value in cfg.values():
            yield from _dicts(value)
    elif isinstance(cfg, (list, tuple)):
        for value in cfg:
            yield from _dicts(value)


def _is_embedded(dataset_cfg):
    return any('Embedded' in str(d.get('type', ''))
               for d in _dicts(dataset_cfg))


def _load(path):
    cfg = Config.fromfile(path)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    init_cfg = cfg.model.backbone.get('init_cfg')
    if isinstance(init_cfg, dict) and init_cfg.get('checkpoint'):
        ckpt = init_cfg['checkpoint']
        if not (osp.exists(ckpt) or osp.exists(osp.join(ROOT, ckpt))):
            cfg.model.backbone.init_cfg = None
    return cfg


def test_there_are_subtuning_configs():
    names = set(IDS)
    for method in ('subtuning', 'linear-probe', 'finetune'):
        assert f'{method}_resnet18-tiny-simclr_1xb64-coslr-10e_embedded.py' \
            in names


@pytest.mark.parametrize('path', CONFIGS, ids=IDS)
def test_model_builds_and_blocks_resolve(path):
    cfg = _load(path)
    model = MODELS.build(copy.deepcopy(cfg.model)).eval()
    if 'trainable_blocks' in cfg.model:
        valid = block_names(model.backbone)
        blocks = resolve_blocks(model.backbone, cfg.model.trainable_blocks)
        assert set(blocks) <= set(valid)
        assert model.trainable_blocks == blocks
        trained = {
            k
            for k, p in model.backbone.named_parameters() if p.requires_grad
        }
        assert all(
            any(k == b or k.startswith(b + '.') for b in blocks)
            for k in trained)
        assert bool(trained) == bool(blocks)
    # the head fits the backbone's features (64 px: cheap for any input
    # size, ViTs interpolate their position embedding)
    torch.manual_seed(0)
    with torch.no_grad():
        logits = model(torch.randn(1, 3, 64, 64))
    assert logits.shape == (1, cfg.model.head.num_classes)


@pytest.mark.parametrize('path', CONFIGS, ids=IDS)
def test_embedded_datasets_build(path, embedded_root):
    cfg = _load(path)
    built = 0
    for name in LOADERS:
        loader = cfg.get(name)
        if not loader:
            continue
        dataset_cfg = copy.deepcopy(loader.dataset)
        if not _is_embedded(dataset_cfg):
            # a local copy of a real data set (CIFAR, VTAB-1k): not here
            continue
        for d in _dicts(dataset_cfg):
            if 'Embedded' in str(d.get('type', '')):
                d['data_root'] = embedded_root
        dataset = DATASETS.build(dataset_cfg)
        assert len(dataset) > 0
        assert len(dataset.metainfo['classes']) == \
            cfg.model.head.num_classes
        item = dataset[0]
        assert item['inputs'].shape[0] == 3
        assert 0 <= int(item['data_samples'].gt_label) < \
            cfg.model.head.num_classes
        built += 1
    if not built:
        pytest.skip('the data are a local real data set')
