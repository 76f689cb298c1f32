# Copyright (c) mmssl contributors. All rights reserved.
"""ANMClassifier: the loss of one batch by hand, the plain classifier when
ANM is off or warming up, and the per-sample label-quality buffer."""
import copy
import uuid

import pytest
import torch
import torch.nn.functional as F
from mmengine.logging import MessageHub
from mmpretrain.structures import DataSample

import mmssl  # noqa: F401
import mmssl.models.utils.anm as anm_module
from mmssl.models.classifiers.anm_classifier import refine_targets, sharpen
from mmssl.registry import MODELS

SIDE = 16
C = 3


def _cfg(masking=True, decoder=True, **kwargs):
    cfg = dict(
        type='mmssl.ANMClassifier',
        data_preprocessor=dict(
            type='mmpretrain.ClsDataPreprocessor',
            num_classes=C,
            mean=[0.] * 3,
            std=[1.] * 3),
        backbone=dict(
            type='mmpretrain.ResNet_CIFAR',
            depth=18,
            stem_channels=4,
            base_channels=4,
            out_indices=(3, )),
        neck=dict(type='mmpretrain.GlobalAveragePooling'),
        head=dict(
            type='mmpretrain.LinearClsHead',
            num_classes=C,
            in_channels=32,
            loss=dict(type='mmpretrain.CrossEntropyLoss')),
        num_train_samples=10,
        warmup_epochs=2)
    if masking:
        cfg['masking'] = dict(
            type='mmssl.AdversarialNoisyMasking',
            base_ratio=(0.1, 0.1),
            quality_coef=0.2,
            aspect=(1., 1.),
            anchor='corner',
            fill='zero')
    if decoder:
        # 32 x 2 x 2 -> 8 -> 16
        cfg['decoder'] = dict(
            type='mmssl.MaskReconstructionDecoder',
            in_channels=32,
            channels=(8, 3),
            kernel_sizes=(4, 2),
            strides=(4, 2),
            out_size=SIDE)
    cfg.update(kwargs)
    return cfg


def _samples(labels, indices):
    return [
        DataSample(metainfo=dict(sample_idx=i)).set_gt_label(y)
        for y, i in zip(labels, indices)
    ]


def test_sharpen_and_refine():
    p = torch.tensor([[0.6, 0.3, 0.1]])
    assert torch.allclose(sharpen(p, 0.5), p**2 / (p**2).sum())
    onehot = torch.tensor([[0., 1., 0.]])
    y = refine_targets(onehot, p, torch.tensor([0.25]), None)
    assert torch.allclose(y, torch.tensor([[0.45, 0.475, 0.075]]))
    assert torch.allclose(refine_targets(onehot, p, torch.ones(1)), onehot)


def test_loss_by_hand_with_fixed_masks(monkeypatch):
    torch.manual_seed(0)
    model = MODELS.build(_cfg(loss_rec_weight=0.3, loss_prior_weight=0.5))
    model.train()
    x = torch.randn(2, 3, SIDE, SIDE)
    labels, idx, w = [2, 0], [7, 3], torch.tensor([0.1, 0.7])
    model.update_label_quality(idx, w)
    assert model.anm_active
    # the activation maps: max at (3, 4) / (0, 0), min at (12, 13) / (15, 1)
    spikes = [((3, 4), (12, 13)), ((0, 0), (15, 1))]

    def fake_map(feats, image_hw):
        a = torch.full((feats.shape[0], *image_hw), 0.5)
        for b, ((r, c), (r2, c2)) in enumerate(spikes):
            a[b, r, c], a[b, r2, c2] = 1., 0.
        return a

    monkeypatch.setattr(anm_module, 'activation_map', fake_map)
    losses = model.loss(x, _samples(labels, idx))

    # by hand: rho = 0.1 + 0.2 (1 - w) = 0.28 / 0.16; side =
    # round(sqrt(0.5 rho 256)) = 6 / 5; corner boxes clamped into the image
    rho = torch.tensor([0.28, 0.16])
    boxes = {
        'max': [(3, 9, 4, 10), (0, 5, 0, 5)],
        'min': [(10, 16, 10, 16), (11, 16, 1, 6)]
    }
    views = []
    for loc in ('max', 'min'):
        v = x.clone()
        for b, (t, bo, le, ri) in enumerate(boxes[loc]):
            v[b, :, t:bo, le:ri] = 0.
        views.append(v)
    with torch.no_grad():
        logits = model.head(model.neck(model.backbone(x)))
        onehot = F.one_hot(torch.tensor(labels), C).float()
        p = F.softmax(logits, 1)
        y = w[:, None] * onehot + (1 - w[:, None]) * p
        y = y**2 / (y**2).sum(1, keepdim=True)  # sharpen, T = 0.5
        soft = y + rho[:, None] / (C - 1)
        top = y.argmax(1)
        soft[torch.arange(2), top] = y[torch.arange(2), top] - rho
        outs = model.backbone(torch.cat(views))
        m_logits = model.head(model.neck(outs))
        rec = model.decoder(outs[-1])
    ce = -(y * F.log_softmax(logits, 1)).sum(1).mean()
    ce_mask = -(soft.repeat(2, 1) * F.log_softmax(m_logits, 1)).sum(1).mean()
    mse = F.mse_loss(rec[:2], x) + F.mse_loss(rec[2:], x)
    torch.testing.assert_close(losses['loss_cls'].detach(), ce)
    torch.testing.assert_close(losses['loss_mask'].detach(), ce_mask)
    torch.testing.assert_close(losses['loss_rec'].detach(), 0.3 * mse)
    mean_p = torch.cat([F.softmax(logits, 1), F.softmax(m_logits, 1)]).mean(0)
    prior = (torch.log(torch.tensor(1. / C) / mean_p) / C).sum()
    torch.testing.assert_close(losses['loss_prior'].detach(), 0.5 * prior)
    torch.testing.assert_close(losses['rho'], rho.mean())
    assert torch.allclose(soft.sum(1), torch.ones(2))
    # every loss term reaches the backbone
    model.zero_grad()
    sum(v for k, v in losses.items() if k.startswith('loss')).backward()
    assert model.backbone.conv1.weight.grad.abs().sum() > 0
    assert model.decoder.layers[0].weight.grad.abs().sum() > 0


def _grads(model, x, samples):
    model.zero_grad()
    losses = model.loss(x, samples)
    total, _ = model.parse_losses(losses)
    total.backward()
    return total.detach(), {
        k: p.grad.clone()
        for k, p in model.named_parameters() if p.grad is not None
    }


@pytest.mark.parametrize('masking', [False, True])
def test_off_or_warmup_equals_image_classifier(masking):
    """masking=None, or masking before the first quality refresh: exactly
    mmpretrain's ImageClassifier (loss and gradients)."""
    cfg = _cfg(masking=masking, decoder=masking)
    plain_cfg = {
        k: copy.deepcopy(v)
        for k, v in cfg.items()
        if k in ('data_preprocessor', 'backbone', 'neck', 'head')
    }
    torch.manual_seed(0)
    plain = MODELS.build(dict(type='mmpretrain.ImageClassifier', **plain_cfg))
    plain.init_weights()
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    # the same seed gives the same backbone and head (the decoder is built
    # without advancing the global RNG), hence the same warm-up run
    for k, v in plain.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k
    assert not model.anm_active
    x = torch.randn(4, 3, SIDE, SIDE)
    samples = _samples([0, 1, 2, 1], [0, 1, 2, 3])
    loss_a, grads_a = _grads(plain, x, samples)
    loss_b, grads_b = _grads(model, x, samples)
    assert torch.equal(loss_a, loss_b)
    assert grads_a.keys() == grads_b.keys()
    for k in grads_a:
        assert torch.equal(grads_a[k], grads_b[k]), k


def test_quality_buffer_by_sample_idx():
    model = MODELS.build(_cfg())
    assert model.label_quality.shape == (10, )
    assert torch.equal(model.label_quality, torch.ones(10))
    assert 'label_quality' in model.state_dict()
    model.update_label_quality([4, 9, 0], [0.2, 0.5, 0.9])
    assert int(model.quality_refreshes) == 1
    q = model.quality_of(_samples([0, 0, 0, 0], [9, 4, 1, 0]))
    assert torch.allclose(q, torch.tensor([0.5, 0.2, 1., 0.9]))
    with pytest.raises(
            IndexError,
            match=r'sample_idx 10 .*num_train_samples'
            r'=10; set model.num_train_samples'):
        model.quality_of(_samples([0, 0], [3, 10]))
    with pytest.raises(IndexError, match='sample_idx -1'):
        model.update_label_quality([-1], [0.5])
    with pytest.raises(ValueError, match=r'in \[0, 1\]'):
        model.update_label_quality([1], [1.5])
    no_idx = [DataSample().set_gt_label(0)]
    with pytest.raises(KeyError, match='sample_idx.*PackInputs'):
        model.quality_of(no_idx)


def test_build_errors():
    with pytest.raises(ValueError, match='model.num_train_samples is needed'):
        MODELS.build(_cfg(num_train_samples=None))
    with pytest.raises(ValueError, match='model.decoder needs model.masking'):
        MODELS.build(_cfg(masking=False))
    with pytest.raises(ValueError, match='model.mask_feature_index'):
        MODELS.build(_cfg(mask_feature_index=1))
    with pytest.raises(ValueError, match='batch augments'):
        MODELS.build(
            _cfg(
                train_cfg=dict(
                    augments=dict(type='mmpretrain.Mixup', alpha=1.))))


def test_missing_refresh_after_warmup_is_an_error():
    """Past the warm-up without a refresh: an error in a training epoch
    only (not in a validation loop, in eval mode, or outside a runner)."""
    model = MODELS.build(_cfg())
    hub = MessageHub.get_instance(f'anm_test_{uuid.uuid4().hex}')
    x = torch.randn(2, 3, SIDE, SIDE)
    try:
        hub.update_info('loop_stage', 'train')
        hub.update_info('epoch', 1)
        model.loss(x, _samples([0, 1], [0, 1]))  # still warming up
        hub.update_info('epoch', 2)
        with pytest.raises(RuntimeError, match='mmssl.LabelQualityHook'):
            model.loss(x, _samples([0, 1], [0, 1]))
        model.eval()  # e.g. a loss computed by a hook
        model.loss(x, _samples([0, 1], [0, 1]))
        model.train()
        hub.update_info('loop_stage', 'val')
        model.loss(x, _samples([0, 1], [0, 1]))
        hub.update_info('loop_stage', 'train')
        hub.pop_info('epoch')
        model.loss(x, _samples([0, 1], [0, 1]))
    finally:
        hub.pop_info('loop_stage')


def test_mask_seed_stream_is_reproducible_and_advances():
    torch.manual_seed(0)
    cfg = _cfg(mask_seed=3)
    cfg['masking'].update(base_ratio=(0.02, 0.2), aspect=(0.8, 1.25))
    a, b = MODELS.build(cfg), MODELS.build(cfg)
    b.load_state_dict(a.state_dict())
    for m in (a, b):
        m.update_label_quality([0, 1], [0.3, 0.6])
    x = torch.randn(2, 3, SIDE, SIDE)
    s = _samples([0, 1], [0, 1])
    torch.manual_seed(1)
    ra = [a.loss(x, s)['rho'] for _ in range(2)]
    torch.manual_seed(2)  # the global RNG plays no part
    rb = [b.loss(x, s)['rho'] for _ in range(2)]
    assert torch.equal(torch.stack(ra), torch.stack(rb))
    assert not torch.equal(ra[0], ra[1])  # the step moves the stream
    assert int(a.mask_steps) == 2


def test_defaults_are_the_references():
    """T 0.5, rec weight 0.02, prior and masked-view weights 1, 10 warm-up
    epochs, the last backbone output, mmpretrain's soft cross-entropy."""
    p = torch.tensor([[0.6, 0.3, 0.1]])
    onehot = torch.tensor([[0., 1., 0.]])
    w = torch.tensor([0.25])
    assert torch.allclose(sharpen(p), sharpen(p, 0.5))
    assert torch.allclose(
        refine_targets(onehot, p, w), sharpen(w * onehot + (1 - w) * p, 0.5))
    cfg = _cfg()
    cfg.pop('warmup_epochs')
    model = MODELS.build(cfg)
    assert (model.sharpen_temperature, model.loss_rec_weight,
            model.loss_mask_weight, model.loss_prior_weight,
            model.warmup_epochs, model.mask_feature_index,
            model.mask_seed) == (0.5, 0.02, 1.0, 1.0, 10, -1, None)
    assert type(model.soft_loss).__name__ == 'CrossEntropyLoss'
    assert model.soft_loss.use_soft
    # without masking the quality buffer is empty
    plain = MODELS.build(
        _cfg(masking=False, decoder=False, num_train_samples=None))
    assert plain.label_quality.shape == (0, )


def test_argument_bounds():
    """The smallest allowed values build; the first refused ones do not."""
    for key, ok in (('warmup_epochs', 0), ('mask_seed', 0),
                    ('loss_mask_weight', 0.5), ('loss_rec_weight', 0.),
                    ('loss_prior_weight', 0.), ('sharpen_temperature', 1e-3),
                    ('mask_feature_index', -1), ('mask_feature_index', 0)):
        assert getattr(MODELS.build(_cfg(**{key: ok})), key) == ok, key
    for key, bad in (('warmup_epochs', -1), ('mask_seed',
                                             -1), ('loss_mask_weight', -0.5),
                     ('sharpen_temperature', 0.), ('mask_feature_index', True),
                     ('mask_feature_index', False), ('mask_feature_index', -2),
                     ('mask_feature_index', 0.)):
        with pytest.raises(ValueError, match=f'model.{key}'):
            MODELS.build(_cfg(**{key: bad}))


def test_quality_and_index_checks_at_their_edges():
    model = MODELS.build(_cfg())
    model.update_label_quality([0, 9], [0., 1.])  # both ends allowed
    assert model.label_quality[[0, 9]].tolist() == [0., 1.]
    # a negative index beside valid ones is found (the min, not the max)
    with pytest.raises(IndexError, match='sample_idx -1 '):
        model.update_label_quality([3, -1], [0.5, 0.5])
    for bad in (float('nan'), float('inf'), -1e-3, 1.001):
        with pytest.raises(ValueError, match=r'finite and in \[0, 1\]'):
            model.update_label_quality([1, 2], [0.5, bad])


def test_mask_seed_of_rank_and_step(monkeypatch):
    """The masking generator's seed is a fixed function of (mask_seed,
    rank, step): a resumed run draws the same rectangles."""
    import mmssl.models.classifiers.anm_classifier as anm_cls
    monkeypatch.setattr(anm_cls, 'get_dist_info', lambda: (3, 4))
    big = 2**62 + 5
    model = MODELS.build(_cfg(mask_seed=big))
    model.mask_steps += 2
    expected = (big * 1000003 + 3 * 7919 + 2 * 104729) % (2**63 - 1)
    assert model._generator().initial_seed() == expected


def test_warmup_confidence_penalty_by_hand():
    """DivideMix's penalty for asymmetric noise: ``c * mean_b sum_c p log p``
    of the softmax over the classes; no term at its default weight 0."""
    x = torch.randn(4, 3, SIDE, SIDE)  # B != C: the sum is over classes
    samples = _samples([0, 2, 1, 1], [0, 1, 2, 3])
    torch.manual_seed(0)
    model = MODELS.build(_cfg())
    assert set(model.loss(x, samples)) == {'loss_cls'}
    torch.manual_seed(0)
    model = MODELS.build(_cfg(warmup_conf_penalty=0.7))
    losses = model.loss(x, samples)
    with torch.no_grad():
        p = F.softmax(model.head(model.neck(model.backbone(x))), dim=1)
    expected = 0.7 * (p * torch.log(p)).sum(1).mean()
    assert set(losses) == {'loss_cls', 'loss_penalty'}
    torch.testing.assert_close(losses['loss_penalty'].detach(), expected)
    assert losses['loss_penalty'] < 0  # minus the entropy


def test_prior_weight_zero_drops_the_term():
    model = MODELS.build(_cfg(loss_prior_weight=0.))
    model.update_label_quality([0, 1], [0.5, 0.2])
    losses = model.loss(
        torch.randn(2, 3, SIDE, SIDE), _samples([0, 1], [0, 1]))
    assert set(losses) == {
        'loss_cls', 'loss_mask', 'loss_rec', 'quality', 'rho'
    }
    assert losses['quality'].item() == pytest.approx(0.35)  # the mean w
