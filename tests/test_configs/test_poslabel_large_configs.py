# Copyright (c) mmssl contributors. All rights reserved.
"""The ImageNet-1K / Mini-ImageNet positional-label configs (ViT-B, Swin-B).

Each config parses and builds its model on CPU; the positional head matches
the backbone's token grid (196 absolute classes for ViT-B/16, 169 relative
offsets for Swin-B's 7x7 window), the baselines have none, and the data,
class count and recipe (spec section 4) are the paper's. The data sets are
not built (no data here). One forward ``loss`` of the APL ViT-B config on a
2-image batch checks that the parts fit together.
"""
import math
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope
from mmpretrain.structures import DataSample

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
POSLABEL = osp.join(ROOT, 'configs', 'poslabel')

VIT_APL = 'poslabel-apl_vit-base-p16_2xb256-amp-150e'
VIT_BASE = 'vit-base-p16_2xb256-amp-150e'
SWIN_RPL = 'poslabel-rpl_swin-base_2xb320-amp-150e'
SWIN_BASE = 'swin-base_2xb320-amp-150e'

# config stem -> (backbone type, pos head type or None, batch per GPU,
#                 warm-up epochs, batch augments)
STEMS = {
    VIT_APL:
    ('mmssl.PosLabelViT', 'mmssl.AbsPosLabelHead', 256, 10, ['Mixup']),
    VIT_BASE: ('mmssl.PosLabelViT', None, 256, 10, ['Mixup']),
    SWIN_RPL: ('mmssl.PosLabelSwin', 'mmssl.RelPosLabelHead', 320, 20,
               ['Mixup', 'CutMix']),
    SWIN_BASE: ('mmssl.PosLabelSwin', None, 320, 20, ['Mixup', 'CutMix']),
}
# data suffix -> (dataset type, data root, classes)
DATA = {
    'in1k': ('ImageNet', 'data/imagenet', 1000),
    'mini-in': ('mmssl.MiniImageNet', 'data/mini-imagenet', 100),
}
CASES = [(stem, data) for stem in STEMS for data in DATA]


def _path(stem: str, data: str) -> str:
    return osp.join(POSLABEL, f'{stem}_{data}.py')


def _cfg(stem: str, data: str) -> Config:
    cfg = Config.fromfile(_path(stem, data))
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    return cfg


def _build(cfg: Config):
    """The model as the runner builds it: the top-level data preprocessor
    (normalisation, class count) goes into the model config."""
    model_cfg = cfg.model.copy()
    if cfg.get('data_preprocessor') is not None:
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    import mmssl  # noqa: F401  (what custom_imports does)
    return MODELS.build(model_cfg)


@pytest.mark.parametrize(
    'stem,data', CASES, ids=[f'{s}_{d}' for s, d in CASES])
def test_config_builds(stem, data):
    cfg = _cfg(stem, data)
    backbone_type, head_type, batch, warmup, augments = STEMS[stem]
    dataset_type, data_root, num_classes = DATA[data]

    # model
    assert cfg.model.type == 'mmssl.PosLabelClassifier'
    assert cfg.model.backbone.type == backbone_type
    model = _build(cfg)
    grid = tuple(model.backbone.token_grid(model.pos_input))
    if backbone_type == 'mmssl.PosLabelViT':
        assert cfg.model.backbone.arch == 'b'
        assert cfg.model.backbone.patch_size == 16
        assert cfg.model.backbone.out_type == 'featmap'
        assert cfg.model.backbone.with_cls_token is False
        assert model.backbone.use_pos_embed is True
        assert model.backbone.embed_dims == 768
        assert grid == (14, 14)
        assert cfg.model.backbone.drop_path_rate == 0.1
    else:
        assert cfg.model.backbone.arch == 'base'
        assert cfg.model.backbone.window_size == 7
        assert model.backbone.num_features[-1] == 1024
        assert grid == (7, 7)
        assert cfg.model.backbone.drop_path_rate == 0.5
        # the RPL model has no explicit positional encoding; the baseline
        # is the plain Swin with its relative position bias
        assert model.backbone.use_rel_pos_bias is (head_type is None)
        assert not model.backbone.use_abs_pos_embed
    assert cfg.model.neck.type == 'GlobalAveragePooling'
    assert model.head.num_classes == num_classes
    assert model.data_preprocessor.num_classes == num_classes
    assert [a.type for a in cfg.model.train_cfg.augments] == augments

    if head_type is None:
        assert cfg.model.pos_head is None
        assert model.pos_head is None
    else:
        assert cfg.model.pos_head.type == head_type
        assert cfg.model.pos_head.loss_weight == 0.5
        head = model.pos_head
        assert tuple(head.grid_size) == grid
        if head_type == 'mmssl.AbsPosLabelHead':
            assert head.num_classes == grid[0] * grid[1] == 196
            assert tuple(cfg.model.pos_head.mlp_dims) == (384, 192)
        else:
            assert tuple(head.window_size) == (7, 7)
            assert head.num_classes == (2 * 7 - 1)**2 == 169
            assert tuple(cfg.model.pos_head.mlp_dims) == (384, 384)

    # data (types and settings only: the data sets are not built)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        dataset = cfg[loader].dataset
        assert dataset.type == dataset_type, loader
        assert dataset.data_root == data_root, loader
    assert cfg.train_dataloader.dataset.split == 'train'
    assert cfg.val_dataloader.dataset.split == 'val'
    assert cfg.train_dataloader.batch_size == batch
    assert cfg.val_evaluator.type == 'Accuracy'
    assert tuple(cfg.val_evaluator.topk) == (1, 5)
    if data == 'mini-in':
        from mmssl.datasets import MiniImageNet
        assert len(MiniImageNet.METAINFO['classes']) == num_classes

    # schedule: lr 5e-4 per 512 images of the 2-GPU batch, min lr 1 %
    optim = cfg.optim_wrapper
    assert optim.optimizer.type == 'AdamW'
    assert math.isclose(optim.optimizer.lr, 5e-4 * 2 * batch / 512)
    assert optim.optimizer.weight_decay == 0.05
    assert optim.clip_grad.max_norm == 5.0
    assert cfg.auto_scale_lr.base_batch_size == 2 * batch
    warm, cosine = cfg.param_scheduler
    assert warm.type == 'LinearLR' and warm.end == warmup
    assert cosine.type == 'CosineAnnealingLR'
    assert cosine.begin == warmup and cosine.end == 150
    assert math.isclose(optim.optimizer.lr * cosine.eta_min_ratio,
                        5e-6 * 2 * batch / 512)
    assert cfg.train_cfg.max_epochs == 150


@pytest.mark.parametrize('stem', list(STEMS))
def test_mini_config_only_changes_data(stem):
    """The Mini-ImageNet config is its ImageNet config with another data
    set and class count."""
    big, mini = _cfg(stem, 'in1k'), _cfg(stem, 'mini-in')
    big_model = big.model.to_dict()
    big_model['head']['num_classes'] = 100
    assert mini.model.to_dict() == big_model
    for key in ('optim_wrapper', 'param_scheduler', 'train_cfg'):
        assert mini[key] == big[key], key
    for loader in ('train_dataloader', 'val_dataloader'):
        a, b = big[loader].to_dict(), mini[loader].to_dict()
        a['dataset'].update(
            type=b['dataset']['type'], data_root=b['dataset']['data_root'])
        assert a == b, loader


def test_apl_vit_loss_forward():
    """One training-mode forward of the APL ViT-B/16 (mixup on) on 2
    random 224 px images: both losses, the positional one near
    0.5 * log(196) at initialisation."""
    cfg = _cfg(VIT_APL, 'in1k')
    torch.manual_seed(0)
    model = _build(cfg)
    model.init_weights()
    model.train()
    data = dict(
        inputs=[
            torch.randint(0, 256, (3, 224, 224), dtype=torch.uint8)
            for _ in range(2)
        ],
        data_samples=[
            DataSample().set_gt_label(3),
            DataSample().set_gt_label(999)
        ])
    with torch.no_grad():
        data = model.data_preprocessor(data, True)
        assert tuple(data['inputs'].shape) == (2, 3, 224, 224)
        losses = model(**data, mode='loss')
    assert {'loss_pos', 'acc_pos'} <= set(losses)
    assert any(k != 'loss_pos' and k.startswith('loss') for k in losses)
    for key, value in losses.items():
        assert torch.isfinite(value).all(), key
    assert abs(float(losses['loss_pos']) - 0.5 * math.log(196)) < 0.5
