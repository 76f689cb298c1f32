# Copyright (c) mmssl contributors. All rights reserved.
"""mmssl.evaluation.protocols.dense_probe: mmseg's IoU by hand, token maps,
a probe that learns a separable case and stays at chance on noise."""
import math

import pytest
import torch
from torch import nn

from mmssl.evaluation.protocols.dense_probe import (dense_feature_maps,
                                                    dense_probe,
                                                    extract_dense_features,
                                                    segmentation_iou,
                                                    train_dense_probe)


def test_segmentation_iou_by_hand():
    # 2 images of 1 x 3 pixels, 3 classes; 255 is ignored
    target = torch.tensor([[[0, 0, 1]], [[1, 2, 255]]])
    pred = torch.tensor([[[0, 1, 1]], [[1, 1, 0]]])
    out = segmentation_iou(pred, target, num_classes=3)
    # 5 pixels count (the pred 0 under 255 does not)
    # class 0: inter 1, union (pred 1 + gt 2 - 1) = 2 -> 50
    # class 1: inter 2, union (pred 4 + gt 2 - 2) = 4 -> 50
    # class 2: inter 0, union (pred 0 + gt 1) = 1 -> 0
    assert out['IoU'] == pytest.approx([50., 50., 0.])
    assert out['mIoU'] == pytest.approx(100 / 3)
    assert out['aAcc'] == pytest.approx(3 / 5 * 100)


def test_absent_class_is_left_out_of_the_mean():
    target = torch.zeros(1, 2, 2, dtype=torch.long)
    out = segmentation_iou(target.clone(), target, num_classes=4)
    assert out['IoU'][0] == 100. and all(math.isnan(v) for v in out['IoU'][1:])
    assert out['mIoU'] == 100.


class _Tokens(nn.Module):
    """A ViT-like backbone: [CLS] + 4 x 4 patch tokens of 3 channels."""
    num_extra_tokens = 1

    def forward(self, x, mask=True):
        assert mask is None  # run unmasked
        b = x.shape[0]
        grid = torch.arange(16.).view(1, 16, 1).expand(b, 16, 3)
        cls = torch.full((b, 1, 3), -1.)
        return (torch.cat([cls, grid], 1), )


def test_tokens_are_laid_out_on_their_grid():
    maps = dense_feature_maps(_Tokens(), torch.zeros(2, 3, 8, 8))
    assert len(maps) == 1 and maps[0].shape == (2, 3, 4, 4)
    # token i (after [CLS]) sits at row i // 4, column i % 4
    assert torch.equal(maps[0][0, 0], torch.arange(16.).view(4, 4))


class _Pyramid(nn.Module):
    """Two output levels (stride 2 and 4), like a ResNet's stages."""

    def forward(self, x):
        return (nn.functional.avg_pool2d(x, 2),
                nn.functional.avg_pool2d(x[:, :1], 4))


def test_levels_are_resized_and_concatenated():
    feats = extract_dense_features(
        _Pyramid(), torch.rand(5, 3, 16, 16), grid=8, batch_size=2)
    assert feats.shape == (5, 4, 8, 8)


def test_probe_learns_a_separable_case_and_not_noise():
    gen = torch.Generator().manual_seed(0)
    # labels: a random class per 4 x 4 block of a 16 x 16 image
    blocks = torch.randint(0, 3, (64, 4, 4), generator=gen)
    labels = blocks.repeat_interleave(4, 1).repeat_interleave(4, 2)
    informative = nn.functional.one_hot(blocks, 3).permute(0, 3, 1, 2).float()
    informative = informative + 0.1 * torch.randn(
        informative.shape, generator=gen)
    probe = train_dense_probe(
        informative[:48], labels[:48], 3, iters=150, lr=0.05, batch_size=16)
    logits = nn.functional.interpolate(probe(informative[48:]), (16, 16))
    assert segmentation_iou(logits.argmax(1), labels[48:], 3)['mIoU'] > 95
    noise = torch.randn(informative.shape, generator=gen)
    probe = train_dense_probe(
        noise[:48], labels[:48], 3, iters=150, lr=0.05, batch_size=16)
    logits = nn.functional.interpolate(probe(noise[48:]), (16, 16))
    assert segmentation_iou(logits.argmax(1), labels[48:], 3)['mIoU'] < 50


def test_dense_probe_reports_val_and_train():

    class Identity(nn.Module):

        def forward(self, x):
            return (x, )

    gen = torch.Generator().manual_seed(1)
    labels = torch.randint(0, 2, (20, 8, 8), generator=gen)
    images = nn.functional.one_hot(labels, 2).permute(0, 3, 1, 2).float()
    images = torch.cat([images, torch.zeros(20, 1, 8, 8)], 1)
    out = dense_probe(
        Identity(), (images[:12], labels[:12]), (images[12:], labels[12:]),
        2,
        grid=8,
        iters=100,
        lr=0.05)
    assert out['feature_dim'] == 3
    assert out['mIoU'] > 95 and out['train_mIoU'] > 95


def test_nested_outputs_first_map_and_bilinear_resize():
    """A nested output gives its first map; maps are resized bilinearly
    without corner alignment ([0, 1] -> [0, .25, .75, 1]); by default to a
    16 x 16 grid, 64 images per forward."""

    class Nested(nn.Module):

        def __init__(self):
            super().__init__()
            self.batches = []

        def forward(self, x):
            self.batches.append(len(x))
            ramp = torch.tensor([0., 1.]).expand(len(x), 1, 2, 2)
            return [(ramp, torch.full_like(ramp, 7.))]

    backbone = Nested()
    feats = extract_dense_features(backbone, torch.zeros(65, 3, 2, 2), grid=4)
    assert feats.shape == (65, 1, 4, 4)
    assert feats[0, 0, 0].tolist() == [0., 0.25, 0.75, 1.]
    assert backbone.batches == [64, 1]
    assert extract_dense_features(Nested(), torch.zeros(1, 3, 2,
                                                        2)).shape[-1] == 16


def test_probe_initialisation_and_defaults():
    """Before any step the 1x1 conv has U(-1/sqrt(C), 1/sqrt(C)) weights
    and a zero bias, the standardisation the training set's statistics;
    the defaults are iters 300, lr 0.01, weight_decay 1e-4, batch 64 and
    seed 0."""
    gen = torch.Generator().manual_seed(0)
    feats = torch.randn(6, 64, 2, 2, generator=gen) * 3 + 1
    labels = torch.randint(0, 5, (6, 4, 4), generator=gen)
    probe = train_dense_probe(feats, labels, 5, iters=0)
    weight = probe.conv.weight.detach()
    assert weight.shape == (5, 64, 1, 1)
    assert 0.95 / 8 < weight.abs().max() <= 1 / 8
    assert abs(float(weight.mean())) < 0.02 and not probe.conv.bias.any()
    torch.testing.assert_close(probe.mean, feats.mean((0, 2, 3), True))
    torch.testing.assert_close(probe.std, feats.std((0, 2, 3), keepdim=True))
    default = train_dense_probe(feats[:, :4], labels, 5)
    explicit = train_dense_probe(
        feats[:, :4],
        labels,
        5,
        iters=300,
        lr=0.01,
        weight_decay=1e-4,
        batch_size=64,
        seed=0)
    assert torch.equal(default.conv.weight.detach(),
                       explicit.conv.weight.detach())


def test_probe_standardises_then_projects():
    gen = torch.Generator().manual_seed(2)
    feats = torch.randn(4, 3, 2, 2, generator=gen) * 5 + 2
    labels = torch.randint(0, 2, (4, 4, 4), generator=gen)
    labels[0] = 255  # ignored
    probe = train_dense_probe(feats, labels, 2, iters=3)
    x = torch.randn(2, 3, 2, 2, generator=gen)
    expected = probe.conv((x - feats.mean((0, 2, 3), True)) / feats.std(
        (0, 2, 3), keepdim=True))
    torch.testing.assert_close(probe(x), expected)


def test_dense_probe_defaults_and_resizing(monkeypatch):
    """dense_probe's defaults (grid 16, 300 Adam steps at lr 0.01 with
    weight decay 1e-4, seed 0, no predictions kept); every resize is
    bilinear without corner alignment; predictions are made 256 maps at a
    time."""
    import importlib
    module = importlib.import_module(
        'mmssl.evaluation.protocols.dense_probe')  # not the function
    calls, corners = {}, []
    real_interpolate = nn.functional.interpolate

    def interpolate(*args, **kwargs):
        corners.append((kwargs['mode'], kwargs['align_corners']))
        return real_interpolate(*args, **kwargs)

    def extract(backbone, images, grid):
        calls['grid'] = grid
        return torch.randn(len(images), 2, 4, 4)

    real_train = module.train_dense_probe

    def train(*args, **kwargs):
        calls['train'] = kwargs
        probe = real_train(*args, **dict(kwargs, iters=2))
        forward = probe.forward
        probe.forward = lambda x: calls.setdefault('batches', []).append(
            len(x)) or forward(x)
        return probe

    monkeypatch.setattr(module.F, 'interpolate', interpolate)
    monkeypatch.setattr(module, 'extract_dense_features', extract)
    monkeypatch.setattr(module, 'train_dense_probe', train)
    labels = torch.randint(0, 2, (300, 8, 8))
    images = torch.zeros(300, 3, 8, 8)
    out = dense_probe(None, (images[:257], labels[:257]),
                      (images[257:], labels[257:]), 2)
    assert calls['grid'] == 16
    assert calls['train'] == dict(
        iters=300, lr=0.01, weight_decay=1e-4, seed=0)
    assert 'predictions' not in out
    assert calls['batches'][-2:] == [256, 1]  # the 257 training maps
    assert set(corners) == {('bilinear', False)}


def test_set_out_indices_on_built_backbones():
    from mmpretrain.models import ResNet, VisionTransformer

    from mmssl.evaluation.protocols import set_out_indices
    resnet = ResNet(depth=18, out_indices=(3, ))
    set_out_indices(resnet, [-1, 0, 2])
    # negative indices count from the last of the 4 stages; tuple kept
    assert resnet.out_indices == (3, 0, 2)
    resnet.eval()  # the outputs come in stage order
    assert [o.shape[1] for o in resnet(torch.zeros(1, 3, 32, 32))] == \
        [64, 256, 512]
    vit = VisionTransformer(
        arch=dict(
            embed_dims=16, num_layers=3, num_heads=2, feedforward_channels=32),
        img_size=16,
        patch_size=8,
        out_indices=[-1])
    set_out_indices(vit, [-3, 1])
    assert vit.out_indices == [0, 1]
    with pytest.raises(
            ValueError,
            match=r'\[3\] out of range for a '
            'backbone of 3 stages / layers'):
        set_out_indices(vit, [0, 3])
    with pytest.raises(ValueError, match=r'\[-1\] out of range .* 3 stages'):
        set_out_indices(vit, [-4])
    with pytest.raises(ValueError, match='Linear has no out_indices'):
        set_out_indices(torch.nn.Linear(2, 2), [0])
