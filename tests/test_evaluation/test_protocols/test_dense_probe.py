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
