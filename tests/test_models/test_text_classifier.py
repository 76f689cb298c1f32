# Copyright (c) mmssl contributors. All rights reserved.
"""TextClassifier: classification, regression, pretrained backbone."""
import pytest
import torch
from mmengine.optim import OptimWrapper
from mmengine.structures import BaseDataElement

from mmssl.registry import MODELS

BACKBONE = dict(
    type='mmssl.AlbertEncoder',
    vocab_size=50,
    embedding_size=16,
    hidden_size=32,
    num_layers=2,
    num_heads=4,
    ffn_dim=64,
    max_position=32)


def _batch(labels, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids, samples = [], []
    for i, label in enumerate(labels):
        t = 6 + i % 3
        x = torch.randint(5, 50, (t, ), generator=g)
        x[0], x[1] = 2, 5 + i  # [CLS], then a token unique to the item
        ids.append(x)
        sample = BaseDataElement(metainfo=dict(sample_idx=i))
        sample.gt_label = torch.tensor(label)
        samples.append(sample)
    return dict(inputs=dict(input_ids=ids), data_samples=samples)


def _model(head, backbone=BACKBONE):
    torch.manual_seed(0)
    model = MODELS.build(
        dict(type='mmssl.TextClassifier', backbone=backbone, head=head))
    model.init_weights()
    return model


def test_classification_fits_and_predicts():
    model = _model(dict(type='mmssl.TextClsHead', num_classes=3, dropout=0.))
    batch = _batch([0, 1, 2, 1, 0, 2])
    optim = OptimWrapper(torch.optim.Adam(model.parameters(), lr=1e-3))
    first = model.train_step(batch, optim)
    assert set(first) == {'loss', 'accuracy'}
    assert first['loss'].item() == pytest.approx(1.0986, abs=0.01)  # ln 3
    for _ in range(60):
        last = model.train_step(batch, optim)
    assert last['loss'] < 0.6 * first['loss']
    out = model.val_step(batch)
    for sample in out:
        assert sample.pred_score.shape == (3, )
        assert torch.isclose(sample.pred_score.sum(), torch.tensor(1.))
        assert sample.pred_label.shape == ()
        assert sample.pred_label == sample.pred_score.argmax()
    acc = sum(int(s.pred_label == s.gt_label) for s in out) / len(out)
    assert acc > 2 / 6  # beats the majority class


def test_regression():
    model = _model(
        dict(
            type='mmssl.TextClsHead',
            num_classes=1,
            regression=True,
            dropout=0.))
    batch = _batch([0.5, 3.2, 4.9, 1.0])
    optim = OptimWrapper(torch.optim.Adam(model.parameters(), lr=3e-3))
    first = model.train_step(batch, optim)
    assert set(first) == {'loss'}
    for _ in range(30):
        last = model.train_step(batch, optim)
    assert last['loss'] < 0.2 * first['loss']
    out = model.val_step(batch)
    for sample in out:
        assert sample.pred_value.shape == ()
        assert sample.pred_value.dtype == torch.float32
        assert 'pred_label' not in sample


def test_pretrained_backbone_from_an_albert_pretrainer(tmp_path):
    torch.manual_seed(1)
    pretrainer = MODELS.build(
        dict(type='mmssl.AlbertPretrainer', backbone=BACKBONE))
    pretrainer.init_weights()
    with torch.no_grad():  # move away from any fresh initialisation
        for p in pretrainer.backbone.parameters():
            p.add_(0.5)
    path = tmp_path / 'pretrain.pth'
    torch.save(dict(meta=dict(), state_dict=pretrainer.state_dict()), path)
    backbone = dict(
        BACKBONE,
        init_cfg=dict(
            type='Pretrained', checkpoint=str(path), prefix='backbone.'))
    model = _model(
        dict(type='mmssl.TextClsHead', num_classes=2), backbone=backbone)
    mine = model.backbone.state_dict()
    theirs = pretrainer.backbone.state_dict()
    assert set(mine) == set(theirs)
    for key in mine:
        assert torch.equal(mine[key], theirs[key]), key
    # the head is freshly initialised
    assert model.head.fc.weight.abs().max() <= 0.04 + 1e-6


def test_errors():
    model = _model(dict(type='mmssl.TextClsHead', num_classes=2))
    batch = _batch([0, 1, 2])
    with pytest.raises(ValueError, match='num_classes'):
        model.train_step(
            batch, OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.)))
    batch = _batch([0, 1])
    del batch['data_samples'][1].gt_label
    with pytest.raises(ValueError, match="has no 'gt_label'"):
        model.train_step(
            batch, OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.)))
    assert 'pred_label' in model.val_step(batch)[1]  # predict needs none
    with pytest.raises(ValueError, match='in_channels'):
        _model(dict(type='mmssl.TextClsHead', num_classes=2, in_channels=8))
    with pytest.raises(ValueError, match='with_pooler'):
        _model(
            dict(type='mmssl.TextClsHead', num_classes=2),
            backbone=dict(BACKBONE, with_pooler=False))
