# Copyright (c) mmssl contributors. All rights reserved.
"""The segmentation / detection transfer configs of configs/transfer/.

Every config builds in its host's scope; the tiny ones load a converted
pretraining checkpoint into the backbone, train an epoch on a tiny embedded
data set through mmengine's Runner and evaluate (mIoU / box mAP); layer-wise
lr decay follows the backbone's depth.
"""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import MODELS, init_default_scope

from mmssl.apis.convert import convert_checkpoint
from mmssl.datasets import make_embedded_data

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TRANSFER = osp.join(ROOT, 'configs', 'transfer')
CONFIGS = sorted(
    p for p in glob.glob(osp.join(TRANSFER, '**', '*.py'), recursive=True)
    if '_base_' not in p)
SCOPES = {'seg': 'mmseg', 'det': 'mmdet'}

SEG = 'configs/transfer/seg/'
DET = 'configs/transfer/det/'
# tiny transfer config -> (pretraining config, convert_backbone --to)
TINY = {
    SEG + 'fcn_r18-tiny-d8-simclr_1xb8-20e_embedded.py':
    ('configs/simclr/simclr_resnet18-tiny_1xb64-coslr-30e_embedded.py',
     'mmseg'),
    SEG + 'upernet_vit-tiny-p8-mae_1xb8-20e_embedded.py':
    ('configs/mae/mae_vit-tiny-p8_1xb64-coslr-30e_embedded.py', 'mmpretrain'),
    SEG + 'upernet_vit-tiny-p8-data2vec2_1xb8-20e_embedded.py':
    ('configs/data2vec2/data2vec2_vit-tiny-p8_1xb64-coslr-30e_embedded.py',
     'mmpretrain'),
    DET + 'faster-rcnn_r18-tiny-fpn-simclr_syncbn_1xb8-8e_embedded.py':
    ('configs/simclr/simclr_resnet18-tiny_1xb64-coslr-30e_embedded.py',
     'mmdet'),
}


def _task(path):
    return osp.basename(osp.dirname(path))


def _build_optim(model, optim_cfg):
    optim_cfg = optim_cfg.copy()
    if not torch.cuda.is_available() and optim_cfg.get(
            'type') == 'AmpOptimWrapper':
        optim_cfg['type'] = 'OptimWrapper'
        optim_cfg.pop('loss_scale', None)
    return build_optim_wrapper(model, optim_cfg)


def test_transfer_configs_exist():
    names = [osp.relpath(p, ROOT) for p in CONFIGS]
    for tiny in TINY:
        assert tiny in names
    for data in ('voc12aug', 'cityscapes', 'ade20k'):
        for prefix in ('fcn_r50-d8-densecl', 'fcn_r50-d8-simclr',
                       'upernet_vit-b16-mae', 'upernet_vit-b16-data2vec2'):
            assert any(
                osp.basename(n).startswith(prefix) and data in n
                for n in names), (prefix, data)
    for name in ('faster-rcnn_r50-fpn-densecl_syncbn_8xb2-1x_coco.py',
                 'mask-rcnn_r50-fpn-densecl_syncbn_8xb2-1x_coco.py',
                 'faster-rcnn_r50-fpn-densecl_syncbn_8xb2-1x_voc0712.py'):
        assert DET + name in names


@pytest.mark.parametrize(
    'path', CONFIGS, ids=[osp.relpath(p, TRANSFER) for p in CONFIGS])
def test_transfer_config_builds(path):
    cfg = Config.fromfile(path)
    task = _task(path)
    assert cfg.default_scope == SCOPES[task]
    init_default_scope(cfg.default_scope)
    model = MODELS.build(cfg.model)
    assert type(model).__module__.startswith(SCOPES[task])
    # the pretrained backbone comes from a converted checkpoint that a
    # documented command writes under work_dirs/transfer/
    init = cfg.model.backbone.init_cfg
    assert init.type == 'Pretrained' and init.prefix == 'backbone.'
    assert init.checkpoint == cfg.pretrained
    assert cfg.pretrained.startswith('work_dirs/transfer/')
    if task == 'det':
        backbone = cfg.model.backbone
        assert backbone.norm_cfg.type == 'SyncBN'
        assert backbone.norm_eval is False and backbone.frozen_stages == -1
        assert cfg.model.neck.norm_cfg.type == 'SyncBN'
    elif cfg.model.backbone.type.endswith('ResNet'):
        assert cfg.model.backbone.get('deep_stem', False) is False
    _build_optim(model, cfg.optim_wrapper)


@pytest.mark.parametrize('name', [
    'upernet_vit-tiny-p8-mae_1xb8-20e_embedded.py',
    'upernet_vit-tiny-p8-data2vec2_1xb8-20e_embedded.py',
    'upernet_vit-b16-mae_8xb2-160k_ade20k-512x512.py',
])
def test_layer_decay(name):
    cfg = Config.fromfile(osp.join(ROOT, SEG, name))
    init_default_scope('mmseg')
    model = MODELS.build(cfg.model)
    wrapper = _build_optim(model, cfg.optim_wrapper)
    groups = {g['param_name']: g for g in wrapper.optimizer.param_groups}
    assert len(groups) == sum(p.requires_grad for p in model.parameters())
    base = cfg.optim_wrapper.optimizer.lr
    rate = cfg.optim_wrapper.paramwise_cfg.layer_decay_rate
    assert rate == 0.65
    num = model.backbone.num_layers + 2  # embedding, blocks, rest

    def lr(key):
        return groups[key]['lr']

    embed = 'backbone.patch_embed.projection.weight'
    assert lr(embed) == pytest.approx(base * rate**(num - 1))
    assert lr('backbone.cls_token') == pytest.approx(base * rate**(num - 1))
    for i in range(model.backbone.num_layers):
        key = next(
            k for k in groups
            if k.startswith(f'backbone.layers.{i}.') and k.endswith('weight'))
        assert lr(key) == pytest.approx(base * rate**(num - 2 - i)), key
    # everything outside the backbone learns at the full rate
    for key in groups:
        if not key.startswith('backbone.'):
            assert lr(key) == pytest.approx(base), key
    # no weight decay on 1-D parameters and on the position / class tokens
    wd = cfg.optim_wrapper.optimizer.weight_decay
    for key, group in groups.items():
        param = group['params'][0]
        if param.ndim == 1 or key.endswith(('cls_token', 'pos_embed')):
            assert group['weight_decay'] == 0., key
        elif key == embed:
            assert group['weight_decay'] == wd
    if 'data2vec2' in name:  # its input LayerNorm belongs to the embedding
        assert lr('backbone.ln_pre.weight') == pytest.approx(base *
                                                             rate**(num - 1))


def test_layer_decay_needs_backbone_depth():
    cfg = Config.fromfile(
        osp.join(ROOT, SEG, 'fcn_r18-tiny-d8-simclr_1xb8-20e_embedded.py'))
    init_default_scope('mmseg')
    model = MODELS.build(cfg.model)
    optim = dict(
        optimizer=dict(type='SGD', lr=0.1),
        constructor='mmssl.BackboneLayerDecayOptimWrapperConstructor',
        paramwise_cfg=dict(layer_decay_rate=0.5))
    with pytest.raises(TypeError, match='get_layer_depth'):
        build_optim_wrapper(model, optim)


# --------------------------------------------------------------------------
# tiny configs: load a converted checkpoint, train, evaluate
# --------------------------------------------------------------------------
@pytest.fixture(scope='module')
def tiny_embedded(tmp_path_factory):
    """8 training and 4 validation scenes for detection / segmentation."""
    root = tmp_path_factory.mktemp('embedded')
    make_embedded_data(str(root), num_train=16, num_val=8)
    return str(root)


def _pretraining_checkpoint(pretrain_cfg, path):
    """A checkpoint of the method's tiny pretraining model (random, but
    every backbone weight distinct from a fresh initialisation)."""
    cfg = Config.fromfile(osp.join(ROOT, pretrain_cfg))
    init_default_scope('mmpretrain')
    torch.manual_seed(1)
    model = MODELS.build(cfg.model)
    with torch.no_grad():
        for name, param in model.backbone.named_parameters():
            param.add_(torch.randn_like(param) * 0.1)
    torch.save(dict(state_dict=model.state_dict(), meta=dict(epoch=1)), path)
    return path


def _tiny_cfg(path, data_root, work_dir, backbone_ckpt):
    cfg = Config.fromfile(osp.join(ROOT, path))
    cfg.work_dir = work_dir
    cfg.launcher = 'none'
    cfg.log_level = 'WARNING'
    cfg.model.backbone.init_cfg.checkpoint = backbone_ckpt
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg[name]
        loader.dataset.data_root = data_root
        loader.batch_size = 4
        loader.num_workers = 0
        loader.pop('persistent_workers', None)
    for name in ('val_evaluator', 'test_evaluator'):
        if cfg[name].get('ann_file'):
            cfg[name].ann_file = osp.join(data_root, 'det', 'annotations',
                                          'instances_val.json')
    cfg.train_cfg.max_epochs = 1
    cfg.train_cfg.val_interval = 1
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    return cfg


@pytest.mark.parametrize(
    'path', list(TINY), ids=[osp.basename(p) for p in TINY])
def test_tiny_config_loads_trains_and_evaluates(path, tiny_embedded, tmp_path):
    from mmengine.runner import Runner
    pretrain_cfg, target = TINY[path]
    src = _pretraining_checkpoint(pretrain_cfg, str(tmp_path / 'pre.pth'))
    dst = str(tmp_path / f'backbone_{target}.pth')
    convert_checkpoint(src, dst, target=target)
    cfg = _tiny_cfg(path, tiny_embedded, str(tmp_path / 'work'), dst)
    scope = cfg.default_scope

    # the backbone really receives the converted weights
    init_default_scope(scope)
    model = MODELS.build(cfg.model)
    fresh = {
        k: v.detach().clone()
        for k, v in model.backbone.named_parameters()
    }
    model.init_weights()
    ckpt = torch.load(dst, map_location='cpu', weights_only=True)
    ckpt = ckpt['state_dict']
    loaded = model.backbone.state_dict()
    compared = 0
    for key, value in ckpt.items():
        assert key.startswith('backbone.')
        name = key[len('backbone.'):]
        if name not in loaded:  # e.g. MAE's final norm, unused here
            continue
        assert torch.equal(loaded[name], value), name
        if name in fresh and value.numel() > 1:
            assert not torch.equal(fresh[name], value), name
        compared += 1
    assert compared >= 0.9 * len(loaded)

    runner = Runner.from_cfg(cfg)
    # one process: mmengine turns SyncBN into BN
    assert not any(
        isinstance(m, torch.nn.SyncBatchNorm) for m in runner.model.modules())
    assert any(
        isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
        for m in runner.model.modules())
    runner.train()
    metrics = runner.test()
    key = 'mIoU' if _task(path) == 'seg' else 'coco/bbox_mAP'
    assert key in metrics
    low, high = (0, 100) if key == 'mIoU' else (-1, 1)
    assert low <= metrics[key] <= high
