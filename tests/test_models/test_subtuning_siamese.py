# Copyright (c) mmssl contributors. All rights reserved.
"""SubTuning's Siamese option (spec subtuning.md sections 1, 3, 6, 7): the
head reads [h_S(x); h_frozen(x)], the frozen copy is the backbone after the
pretrained weights are loaded and never moves."""
import os.path as osp
import sys

import pytest
import torch
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmpretrain.structures import DataSample
from torch.nn.modules.batchnorm import _BatchNorm

from mmssl.registry import MODELS
from mmssl.testing.checkpoints import save_as_backbone

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from subtuning_helpers import subtuning_cfg  # noqa: E402
from subtuning_helpers import RESNET_CHANNELS, tiny_resnet, tiny_vit

init_default_scope('mmpretrain')

F_RESNET = RESNET_CHANNELS


def _classifier(backbone=None,
                trainable=('layer4.1', ),
                siamese=True,
                in_channels=2 * F_RESNET,
                neck=True):
    return subtuning_cfg(
        backbone or tiny_resnet(),
        trainable,
        in_channels=in_channels,
        neck=neck,
        siamese=siamese)


def _inputs(n=4, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 32, 32, generator=gen)


def _train(model, steps=3):
    wrapper = build_optim_wrapper(
        model, dict(optimizer=dict(type='AdamW', lr=1e-2, weight_decay=1e-2)))
    model.train()
    for step in range(steps):
        data = dict(
            inputs=_inputs(seed=step) * 50 + 127,
            data_samples=[DataSample().set_gt_label(i % 3) for i in range(4)])
        model.train_step(data, wrapper)
    return wrapper


def _halves(model, x):
    with torch.no_grad():
        feat = model.extract_feat(x)[-1]
    return feat[:, :F_RESNET], feat[:, F_RESNET:]


def test_head_input_is_twice_the_backbone_width():
    torch.manual_seed(0)
    model = MODELS.build(_classifier()).eval()
    x = _inputs()
    with torch.no_grad():
        backbone = model.extract_feat(x, stage='backbone')
        neck = model.extract_feat(x, stage='neck')
        pre_logits = model.extract_feat(x, stage='pre_logits')
        logits = model(x)
    assert backbone[-1].shape == (4, 2 * F_RESNET, 1, 1)
    assert neck[-1].shape == pre_logits.shape == (4, 2 * F_RESNET)
    assert logits.shape == (4, 3)
    # at init the two halves are the same features
    tuned, frozen = _halves(model, x)
    torch.testing.assert_close(tuned, frozen, atol=0, rtol=0)
    # all output indices are concatenated
    multi = MODELS.build(
        _classifier(tiny_resnet(out_indices=(2, 3)), neck=True)).eval()
    with torch.no_grad():
        outs = multi.extract_feat(x, stage='backbone')
    assert [o.shape[1] for o in outs] == [2 * 32, 2 * F_RESNET]
    # a head sized for F fails at the first forward
    narrow = MODELS.build(_classifier(in_channels=F_RESNET)).eval()
    with pytest.raises(RuntimeError, match='shapes cannot be multiplied'):
        narrow(x)


@pytest.mark.parametrize(
    'out_type,shape',
    [
        ('cls_token', (4, 32)),
        ('raw', (4, 17, 32)),  # the class token and 16 patches
        ('featmap', (4, 32, 4, 4)),
    ])
def test_vit_outputs_concatenate_on_the_channels(out_type, shape):
    model = MODELS.build(
        _classifier(
            tiny_vit(num_layers=2, out_type=out_type), ['layers.1'],
            in_channels=32,
            neck=False)).eval()
    with torch.no_grad():
        feat = model.extract_feat(_inputs(), stage='backbone')[-1]
    assert feat.shape == shape
    channels = feat.shape[-1] if out_type == 'raw' else feat.shape[1]
    first, second = feat.split(
        channels // 2, dim=-1 if out_type == 'raw' else 1)
    torch.testing.assert_close(first, second, atol=0, rtol=0)


def test_frozen_copy_comes_from_the_pretrained_checkpoint(tmp_path):
    torch.manual_seed(1)
    pretrained = MODELS.build(tiny_resnet())
    with torch.no_grad():
        for p in pretrained.parameters():
            p.add_(1.)  # far from any fresh initialisation
    path = str(tmp_path / 'pretrained.pth')
    save_as_backbone(pretrained, str(path))
    cfg = _classifier(
        tiny_resnet(
            init_cfg=dict(
                type='Pretrained', checkpoint=path, prefix='backbone.')))
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    want = pretrained.state_dict()
    for name in ('backbone', 'frozen_backbone'):
        got = getattr(model, name).state_dict()
        for key in want:
            assert torch.equal(got[key], want[key]), f'{name}.{key}'
    # a second call does not copy again
    with torch.no_grad():
        model.backbone.layer4[1].conv1.weight.add_(1.)
    model.init_weights()
    assert not torch.equal(model.backbone.layer4[1].conv1.weight,
                           model.frozen_backbone.layer4[1].conv1.weight)


def test_frozen_half_stays_tuned_half_moves():
    torch.manual_seed(0)
    model = MODELS.build(_classifier())
    model.init_weights()
    model.train()
    assert not any(m.training for m in model.frozen_backbone.modules())
    assert model.backbone.layer4[1].training
    assert not any(p.requires_grad for p in model.frozen_backbone.parameters())
    frozen_before = {
        k: v.clone()
        for k, v in model.frozen_backbone.state_dict().items()
    }
    x = _inputs(seed=9)
    tuned_before, _ = _halves(model.eval(), x)
    wrapper = _train(model)
    for key, value in model.frozen_backbone.state_dict().items():
        assert torch.equal(value, frozen_before[key]), key
    # the frozen copy of the tuned block did not move, the block did
    assert not torch.equal(model.backbone.layer4[1].conv1.weight,
                           model.frozen_backbone.layer4[1].conv1.weight)
    tuned_after, frozen_after = _halves(model.eval(), x)
    assert not torch.allclose(tuned_after, tuned_before)
    torch.testing.assert_close(frozen_after, tuned_before, atol=0, rtol=0)
    # no optimizer state for the copy
    copy_ids = {id(p) for p in model.frozen_backbone.parameters()}
    assert not copy_ids & {id(p) for p in wrapper.optimizer.state}


def test_checkpoint_holds_the_copy():
    torch.manual_seed(0)
    model = MODELS.build(_classifier())
    model.init_weights()
    _train(model)
    state = model.state_dict()
    assert 'frozen_backbone.layer1.0.bn1.running_mean' in state
    torch.manual_seed(5)
    other = MODELS.build(_classifier())  # as tools/test.py builds it
    other.load_state_dict(state, strict=True)
    x = _inputs(seed=3)
    with torch.no_grad():
        torch.testing.assert_close(
            other.eval()(x), model.eval()(x), atol=0, rtol=0)


def test_siamese_false_is_unchanged():
    torch.manual_seed(0)
    plain = MODELS.build(_classifier(siamese=False, in_channels=F_RESNET))
    assert not hasattr(plain, 'frozen_backbone')
    assert not any(k.startswith('frozen_backbone') for k in plain.state_dict())
    torch.manual_seed(0)
    default = _classifier(in_channels=F_RESNET)
    default.pop('siamese')
    default = MODELS.build(default)
    x = _inputs()
    with torch.no_grad():
        want = default.eval().backbone(x)[-1]
        got = plain.eval().extract_feat(x, stage='backbone')[-1]
    torch.testing.assert_close(got, want, atol=0, rtol=0)
    assert len(plain.frozen_modules()) == len(default.frozen_modules())
    plain.train()
    assert not any(m.training for m in plain.backbone.layer1.modules()
                   if isinstance(m, _BatchNorm))
    with pytest.raises(ValueError, match='siamese=True'):
        plain.sync_frozen_backbone()
    with pytest.raises(ValueError, match='model.siamese must be True or'):
        MODELS.build(_classifier(siamese='yes'))
