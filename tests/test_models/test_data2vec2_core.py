# Copyright (c) mmssl contributors. All rights reserved.
"""The modality-agnostic data2vec 2.0 core: mask owners and model-side
mask generators (the image path keeps its tests in test_data2vec2.py)."""
from unittest import mock

import pytest
import torch
from mmpretrain.structures import DataSample

from mmssl.models.selfsup.data2vec2 import MOVED_MASK_KEYS
from mmssl.models.utils import RandomTokenMasker, inverse_block_mask
from mmssl.registry import MODELS
from mmssl.testing import tiny_data2vec2_cfg


def build(**overrides):
    cfg = tiny_data2vec2_cfg()
    for key in MOVED_MASK_KEYS:
        cfg.pop(key, None)
    cfg.update(overrides)
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def samples(batch_size, num_masks=3):
    masks = inverse_block_mask(4, 4, 0.8, batch_size * num_masks)
    masks = masks.view(batch_size, num_masks, 4, 4)
    return [DataSample().set_mask(m) for m in masks]


def test_random_token_masker_exact_counts_and_independence():
    gen = RandomTokenMasker()  # the text recipe: 48 % removed, 8 masks
    masks = gen(3, (50, ), torch.device('cpu'))
    assert masks.shape == (3, 8, 50) and masks.dtype == torch.bool
    # int(50 * 0.52) = 26 kept, 24 removed in every row
    assert (masks.sum(-1) == 24).all()
    flat = masks.flatten(0, 1)
    assert len({tuple(r.tolist()) for r in flat}) == 24
    # over many draws every position is removed ~48 % of the time
    many = gen(200, (50, ), torch.device('cpu')).float().mean((0, 1))
    assert (many - 0.48).abs().max() < 0.05


def test_random_token_masker_seed_and_bad_input():
    a = RandomTokenMasker(0.5, 2, seed=3)(2, (10, ), 'cpu')
    b = RandomTokenMasker(0.5, 2, seed=3)(2, (10, ), 'cpu')
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match='model.mask_generator.mask_ratio'):
        RandomTokenMasker(mask_ratio=1.0)
    with pytest.raises(ValueError, match='model.mask_generator.num_masks'):
        RandomTokenMasker(num_masks=0)


def test_model_side_generator_sets_clones_and_owns_the_masks():
    """With model.mask_generator the model draws the masks on the token
    layout (M from the generator) and refuses batches that carry masks."""
    torch.manual_seed(0)
    model = build(
        mask_generator=dict(
            type='mmssl.RandomTokenMasker', mask_ratio=0.75, num_masks=5))
    x = torch.randn(2, 3, 32, 32)
    seen = {}
    orig = model.head.loss

    def spy(pred, targets, mask, cls_pred=None):
        seen['pred'], seen['mask'] = pred, mask
        return orig(pred, targets, mask, cls_pred)

    model.head.loss = spy
    losses = model.loss(x, [DataSample(), DataSample()])
    assert seen['pred'].shape == (10, 16, 16)
    assert (seen['mask'].sum(-1) == 12).all()  # 16 - int(16 * .25)
    assert torch.isfinite(losses['loss_reg'])
    with pytest.raises(ValueError, match='one owner'):
        model.loss(x, samples(2))


def test_bad_mask_generator_names_the_key():
    with pytest.raises(ValueError, match='model.mask_generator'):
        build(mask_generator=dict(type='mmssl.RandomTokenMasker', bad=1))
    with pytest.raises(ValueError, match='model.mask_generator'):
        build(mask_generator=dict(type='mmssl.NoSuchMasker'))


def test_teacher_input_is_validated(monkeypatch):
    from mmssl.models.backbones import D2V2ViT
    assert build().teacher_input == 'raw'
    monkeypatch.setattr(D2V2ViT, 'teacher_input', 'nonsense', raising=False)
    with pytest.raises(ValueError, match="teacher_input='nonsense'"):
        build()


def test_backbone_states_its_extra_tokens(monkeypatch):
    from mmssl.models.backbones import D2V2ViT
    assert build().num_extra_tokens == 1  # the CLS token
    for bad in (None, -1, 1.0, True):
        monkeypatch.setattr(D2V2ViT, 'num_extra_tokens', bad)
        with pytest.raises(ValueError, match=f'num_extra_tokens={bad!r}'):
            build()


def test_default_teacher_schedule_is_fairseqs_vit_b():
    cfg = tiny_data2vec2_cfg()
    for key in (*MOVED_MASK_KEYS, 'ema'):
        cfg.pop(key, None)
    teacher = MODELS.build(cfg).teacher
    assert (teacher.momentum, teacher.end_momentum,
            teacher.anneal_iters) == (2e-4, 1e-5, 100000)


def test_train_without_argument_trains_the_student_only():
    model = build()
    model.eval()
    model.train()
    assert model.backbone.training and model.neck.training
    assert not model.teacher.training and not model.teacher.module.training


def test_top_k_may_use_every_block():
    cfg = tiny_data2vec2_cfg()
    for key in MOVED_MASK_KEYS:
        cfg.pop(key, None)
    depth = cfg['backbone']['arch']['num_layers']
    cfg['head']['top_k'] = depth
    assert MODELS.build(cfg).head.top_k == depth
    cfg['head']['top_k'] = depth + 1
    with pytest.raises(ValueError, match=f'top_k={depth + 1} is larger'):
        MODELS.build(cfg)


def test_batch_masks_one_per_sample_and_missing_ones():
    from mmssl.models.selfsup.data2vec2 import Data2VecV2
    one = [DataSample().set_mask(torch.eye(4, dtype=torch.bool))] * 2
    masks = Data2VecV2.batch_masks(one, (4, 4), torch.device('cpu'))
    assert masks.shape == (2, 1, 4, 4)  # M = 1
    assert torch.equal(masks[1, 0], torch.eye(4, dtype=torch.bool))
    with pytest.raises(ValueError, match='the batch has no data samples'):
        Data2VecV2.batch_masks(None, (4, 4), torch.device('cpu'))
    with pytest.raises(ValueError, match='1 of 2 data samples have no'):
        Data2VecV2.batch_masks([one[0], DataSample()], (4, 4),
                               torch.device('cpu'))


def test_loss_takes_the_first_of_a_list_of_inputs():
    model = build()
    x = torch.randn(2, 3, 32, 32)
    data = samples(2)
    torch.manual_seed(0)
    want = model.loss(x, data)
    torch.manual_seed(0)
    got = model.loss([x, torch.zeros_like(x)], data)
    for key in ('loss_reg', 'loss_cls'):
        assert torch.equal(got[key], want[key])


def test_cls_prediction_is_the_first_latent_token():
    """Spec 2.8: the CLS prediction is the encoder output z[:, 0] (not the
    decoder's), one per clone."""
    model = build()
    latents = []
    model.backbone.register_forward_hook(
        lambda module, args, out: latents.append(out[0]))
    with mock.patch.object(
            model.head, 'loss', wraps=model.head.loss) as head_loss:
        model.loss(torch.randn(2, 3, 32, 32), samples(2))
    cls_pred = head_loss.call_args.args[3]
    assert len(latents) == 1 and cls_pred.shape == (6, 16)
    assert torch.equal(cls_pred, latents[0][:, 0])
