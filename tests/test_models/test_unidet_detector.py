# Copyright (c) mmssl contributors. All rights reserved.
"""UniDet Cascade R-CNN on mmdet 3.3: sigmoid-of-mean-logits prediction,
frozen backbone, registry resolution from mmdet's scope, the configs."""
import copy
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TINY = osp.join(ROOT, 'configs', 'unidet',
                'unidet_cascade-rcnn_r18-fpn_1xb8-hier-400it_embedded.py')
LARGE = osp.join(
    ROOT, 'configs', 'unidet',
    'unidet_cascade-rcnn_regnety-32gf-nasfpn-crpn_8xb2-1x_rvc.py')


@pytest.fixture(scope='module')
def label_space(tmp_path_factory):
    from mmssl.datasets import make_embedded_data, prepare_embedded_unidet
    root = str(tmp_path_factory.mktemp('embedded'))
    make_embedded_data(root, num_train=8, num_val=4)
    return prepare_embedded_unidet(root)


def _model_cfg(label_space, num_stages=3, **model_kw):
    cfg = Config.fromfile(TINY).model
    for head in cfg.roi_head.bbox_head:
        head.loss_cls.label_space = label_space
    if num_stages != 3:
        cfg.roi_head.num_stages = num_stages
        cfg.roi_head.bbox_head = cfg.roi_head.bbox_head[:num_stages]
        cfg.roi_head.stage_loss_weights = [1, 0.5][:num_stages]
        cfg.train_cfg.rcnn = cfg.train_cfg.rcnn[:num_stages]
    cfg.update(model_kw)
    return cfg


def _build(cfg):
    from mmdet.registry import MODELS
    init_default_scope('mmdet')
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def _batch(num_classes=10, size=128, batch=2):
    from mmdet.testing import demo_mm_inputs
    return demo_mm_inputs(
        batch, [[3, size, size]] * batch,
        num_items=[2] * batch,
        num_classes=num_classes,
        with_mask=False)


def test_registry_and_head_protocol(label_space):
    from mmssl.models import HierarchyBCELoss, UniDetBBoxHead
    model = _build(_model_cfg(label_space))
    assert type(model).__name__ == 'UniDetCascadeRCNN'
    for head in model.roi_head.bbox_head:
        assert isinstance(head, UniDetBBoxHead)
        assert isinstance(head.loss_cls, HierarchyBCELoss)
        assert head.fc_cls.out_features == 11  # 10 classes + background
    # a softmax-decoded loss is refused
    bad = copy.deepcopy(_model_cfg(label_space).roi_head.bbox_head[0])
    bad.loss_cls = dict(type='CrossEntropyLoss', use_sigmoid=True)
    from mmdet.registry import MODELS
    with pytest.raises(ValueError, match='custom_cls_channels'):
        MODELS.build(bad)


def test_predict_is_sigmoid_of_mean_stage_logits(label_space):
    model = _build(_model_cfg(label_space, num_stages=2)).eval()
    n = 5
    torch.manual_seed(0)
    logits = [torch.randn(n, 11), torch.randn(n, 11)]
    for head, z in zip(model.roi_head.bbox_head, logits):
        head.forward = (lambda z: lambda x: (z, torch.zeros(n, 4)))(z)
    feats = tuple(
        torch.zeros(1, 64, 128 // s, 128 // s) for s in (4, 8, 16, 32, 64))
    from mmengine.structures import InstanceData
    props = InstanceData(
        bboxes=torch.tensor([[10., 10., 50., 50.]] * n), scores=torch.ones(n))
    meta = dict(
        img_shape=(128, 128), ori_shape=(128, 128), scale_factor=(1., 1.))
    res = model.roi_head.predict_bbox(
        feats, [meta], [props], rcnn_test_cfg=None, rescale=False)[0]
    expect = ((logits[0] + logits[1]) / 2).sigmoid()
    torch.testing.assert_close(res.scores, expect)
    # with the test cfg: the NMS input drops the background column
    res = model.roi_head.predict_bbox(
        feats, [meta], [props], rcnn_test_cfg=model.roi_head.test_cfg)[0]
    assert res.scores.max() == pytest.approx(expect[:, :10].max().item())
    assert int(res.labels.max()) < 10


def test_frozen_backbone_trains_neck_and_heads_only(label_space):
    from mmengine.optim import OptimWrapper
    model = _build(_model_cfg(label_space, freeze_backbone=True))
    model.train()
    assert not model.backbone.training and model.neck.training
    assert not any(p.requires_grad for p in model.backbone.parameters())
    before_bb = copy.deepcopy(model.backbone.state_dict())
    before_neck = copy.deepcopy(model.neck.state_dict())
    params = [p for p in model.parameters() if p.requires_grad]
    wrapper = OptimWrapper(torch.optim.SGD(params, lr=0.05))
    for _ in range(2):
        logs = model.train_step(_batch(), wrapper)
    assert torch.isfinite(logs['loss'])
    for k, v in model.backbone.state_dict().items():
        assert torch.equal(v, before_bb[k]), k  # BN statistics included
    assert any(not torch.equal(v, before_neck[k])
               for k, v in model.neck.state_dict().items())


def test_hierarchy_and_flat_losses_train(label_space):
    from mmengine.optim import OptimWrapper
    for flags in (dict(), dict(set_pos_parents=False, ignore_children=False)):
        cfg = _model_cfg(label_space)
        for head in cfg.roi_head.bbox_head:
            head.loss_cls.update(flags)
        model = _build(cfg).train()
        wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.01))
        logs = model.train_step(_batch(), wrapper)
        assert torch.isfinite(logs['loss']) and 's2.acc' in logs


def test_head_defaults_and_the_protocol_check(monkeypatch):
    """UniDetBBoxHead's default classifier is the flat sigmoid BCE (weight
    1); a loss with sigmoid channels but a softmax decoding is refused."""
    import torch.nn.functional as F
    from mmdet.registry import MODELS

    from mmssl.models import HierarchyBCELoss
    init_default_scope('mmdet')
    head = MODELS.build(
        dict(
            type='mmssl.UniDetBBoxHead',
            num_classes=5,
            in_channels=4,
            fc_out_channels=8,
            roi_feat_size=2))
    assert isinstance(head.loss_cls, HierarchyBCELoss)
    assert not head.loss_cls.uses_hierarchy
    assert head.custom_accuracy and head.fc_cls.out_features == 6
    z, labels = torch.randn(3, 6), torch.tensor([0, 4, 5])
    want = F.binary_cross_entropy_with_logits(
        z, F.one_hot(labels, 6).float(), reduction='sum') / 3
    torch.testing.assert_close(head.loss_cls(z, labels), want)

    # sigmoid channels, softmax decoding: refused
    monkeypatch.setattr(HierarchyBCELoss, 'custom_activation', False)
    with pytest.raises(ValueError, match='got HierarchyBCELoss'):
        MODELS.build(dict(type='mmssl.UniDetBBoxHead', num_classes=5))


def test_backbone_trains_by_default(label_space):
    cfg = _model_cfg(label_space)
    cfg.pop('freeze_backbone', None)
    model = _build(cfg).train()
    assert model.backbone.training
    assert all(p.requires_grad for p in model.backbone.parameters())


def test_large_rvc_config():
    cfg = Config.fromfile(LARGE)
    assert cfg.model.freeze_backbone is True
    assert cfg.model.backbone.frozen_stages == 4
    assert cfg.model.neck.type == 'NASFPN' and cfg.model.neck.stack_times == 7
    assert cfg.model.rpn_head.type == 'CascadeRPNHead'
    assert cfg.model.data_preprocessor.pad_size_divisor == 128
    heads = cfg.model.roi_head.bbox_head
    assert len(heads) == 3 and all(h.num_classes == 540 for h in heads)
    assert heads[0].loss_cls.ignore == 'child+'
    assert cfg.train_dataloader.sampler == dict(
        type='ClassAwareSampler', num_sample_class=1)
    data = cfg.train_dataloader.dataset
    assert data.type == 'mmssl.UnifiedConcatDataset'
    assert [(d.times, d.dataset.source)
            for d in data.datasets] == [(4, 'coco'), (1, 'oid'), (8, 'mvd')]
    assert set(cfg.val_evaluator.sources) == {'coco', 'oid', 'mvd'}
    assert cfg.optim_wrapper.clip_grad.max_norm == 35
