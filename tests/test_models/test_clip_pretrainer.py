# Copyright (c) mmssl contributors. All rights reserved.
"""mmssl.CLIPPretrainer: the symmetric contrastive loss by hand, the
clamped temperature, normalised features and zero-shot scores."""
import math

import pytest
import torch
import torch.nn.functional as F
from mmpretrain.structures import DataSample

from mmssl.models.clip import (CLIPPretrainer, clip_contrastive_loss, tokenize,
                               zero_shot_text_features)

TINY = dict(
    embed_dim=32,
    vision=dict(width=8, image_size=32),
    text=dict(width=32, heads=2, layers=1, context_length=16))
CAPTIONS = ['a red circle.', 'a star.', 'a cross.']


def _model(**kwargs):
    torch.manual_seed(0)
    return CLIPPretrainer(
        class_names=['circle', 'star', 'cross', 'square'],
        arch_overrides=TINY,
        **kwargs)


def _samples():
    samples = [DataSample() for _ in CAPTIONS]
    for sample, caption in zip(samples, CAPTIONS):
        sample.caption = caption
    return samples


def test_contrastive_loss_by_hand():
    g = torch.Generator().manual_seed(0)
    img = F.normalize(torch.randn(3, 5, generator=g), dim=-1)
    txt = F.normalize(torch.randn(3, 5, generator=g), dim=-1)
    n = 3
    logits = [[10 * float(img[i] @ txt[j]) for j in range(n)]
              for i in range(n)]

    def nll(row, k):  # -log softmax(row)[k]
        return -(row[k] - math.log(sum(math.exp(v) for v in row)))

    image_to_text = sum(nll(logits[i], i) for i in range(n)) / n
    text_to_image = sum(
        nll([logits[i][j] for i in range(n)], j) for j in range(n)) / n
    loss = clip_contrastive_loss(img, txt, torch.tensor(math.log(10.)))
    assert loss.item() == pytest.approx(
        (image_to_text + text_to_image) / 2, rel=1e-5)


@pytest.mark.parametrize('start, max_scale, used',
                         [(math.log(200.), 100., 100.),
                          (math.log(200.), 50., 50.), (-1., 100., 1.),
                          (math.log(7.), 100., 7.)])
def test_the_temperature_is_clamped_before_the_loss(start, max_scale, used):
    model = _model(max_logit_scale=max_scale)
    with torch.no_grad():
        model.clip.logit_scale.fill_(start)
    imgs = torch.randn(3, 3, 32, 32)
    losses = model(imgs, _samples(), mode='loss')
    assert model.clip.logit_scale.exp().item() == pytest.approx(used)
    assert losses['logit_scale'].item() == pytest.approx(used)
    assert not losses['logit_scale'].requires_grad
    with torch.no_grad():
        img = F.normalize(model.clip.encode_image(imgs), dim=-1)
        txt = F.normalize(
            model.clip.encode_text(tokenize(CAPTIONS, 16)), dim=-1)
        want = clip_contrastive_loss(img, txt, model.clip.logit_scale)
    torch.testing.assert_close(losses['loss'].detach(), want)


def test_tensor_mode_gives_unit_image_features():
    model = _model().eval()
    assert model.max_log_scale == pytest.approx(math.log(100.))  # CLIP's
    imgs = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        feats = model(imgs)
        raw = model.clip.encode_image(imgs)
    torch.testing.assert_close(feats, F.normalize(raw, dim=-1))
    assert raw.norm(dim=-1).sub(1).abs().min() > 1e-3  # not unit by itself
    with pytest.raises(RuntimeError, match='Invalid mode'):
        model(imgs, mode='features')


def test_zero_shot_scores_are_a_softmax_over_the_classes():
    model = _model().eval()
    imgs = torch.randn(3, 3, 32, 32)
    out = model(imgs, mode='predict')
    with torch.no_grad():
        img = F.normalize(model.clip.encode_image(imgs), dim=-1)
        text = zero_shot_text_features(model.clip, model.class_names,
                                       model.templates)
    want = (100. * img @ text.t()).softmax(-1)
    scores = torch.stack([d.pred_score for d in out])
    torch.testing.assert_close(scores, want)
    assert [int(d.pred_label) for d in out] == want.argmax(-1).tolist()
    # given samples are filled in place
    given = [DataSample() for _ in range(3)]
    assert model(imgs, given, mode='predict') == given
    assert given[0].pred_score.shape == (4, )
