# Copyright (c) mmssl contributors. All rights reserved.
"""CoOp prompt learner, frozen CLIP, NFL."""
import pytest
import torch
import torch.nn.functional as F
from mmpretrain.structures import DataSample

from mmssl.models.clip import tokenize
from mmssl.models.prompt import CoOp, nfl_loss

TINY = dict(
    arch='tiny-rn',
    embed_dim=32,
    vision=dict(width=8, image_size=32),
    text=dict(width=32, heads=2, layers=1, context_length=16))
NAMES = ['circle', 'ellipse', 'semi circle', 'triangle', 'square']


def _model(**kwargs):
    torch.manual_seed(0)
    return CoOp(clip=TINY, class_names=NAMES, **kwargs)


def test_end_layout_and_only_ctx_trains():
    model = _model(n_ctx=4)
    pl = model.prompt_learner
    tokens = pl.encode_names(NAMES)
    prompts = pl(tokens)
    assert prompts.shape == (5, 16, 32)
    for i in range(5):
        torch.testing.assert_close(prompts[i, 1:5], pl.ctx)
    # changing a name leaves the context rows untouched
    other = pl(pl.encode_names(['star'] + NAMES[1:]))
    torch.testing.assert_close(other[0, 1:5], pl.ctx)
    assert [n for n, p in model.named_parameters() if p.requires_grad] == \
        ['prompt_learner.ctx']
    x = torch.randn(4, 3, 32, 32)
    samples = [DataSample().set_gt_label(i % 5) for i in range(4)]
    losses = model.loss(x, samples)
    losses['loss_ce'].backward()
    assert pl.ctx.grad is not None and pl.ctx.grad.abs().sum() > 0
    assert all(p.grad is None for n, p in model.named_parameters()
               if n != 'prompt_learner.ctx')
    model.train()
    assert not model.clip.training  # CLIP stays in eval mode


def test_init_from_words_is_zero_shot_clip():
    model = _model(ctx_init='a photo of a')
    assert model.prompt_learner.n_ctx == 4
    with torch.no_grad():
        feats = model.text_features('all')
        ref = F.normalize(
            model.clip.encode_text(
                tokenize([f'a photo of a {n}.' for n in NAMES], 16)),
            dim=-1)
    torch.testing.assert_close(feats, ref, atol=1e-5, rtol=0)


def test_init_from_words_uses_the_loaded_clip(tmp_path):
    """The context is built before ``init_weights`` loads the CLIP
    checkpoint; after loading it must be the words' embeddings of the
    *loaded* CLIP, so the untrained CoOp is that CLIP's zero-shot."""
    from mmssl.models.clip import build_clip
    torch.manual_seed(123)
    trained = build_clip(**TINY)
    ckpt = str(tmp_path / 'clip.pth')
    torch.save(
        dict(state_dict={
            f'clip.{k}': v
            for k, v in trained.state_dict().items()
        }), ckpt)
    torch.manual_seed(0)  # another random CLIP at build time
    model = CoOp(
        clip=dict(TINY, checkpoint=ckpt),
        class_names=NAMES,
        ctx_init='a photo of a')
    built = model.prompt_learner.ctx.detach().clone()
    model.init_weights()
    ids = tokenize('a photo of a', 16)[0, 1:5]
    want = trained.token_embedding.weight[ids].detach()
    assert not torch.allclose(built, want)
    torch.testing.assert_close(model.prompt_learner.ctx.detach(), want)
    with torch.no_grad():
        feats = model.text_features('all')
        ref = F.normalize(
            trained.encode_text(
                tokenize([f'a photo of a {n}.' for n in NAMES], 16)),
            dim=-1)
    torch.testing.assert_close(feats, ref, atol=1e-5, rtol=0)
    # class-specific context: every class row gets the words
    torch.manual_seed(0)
    csc = CoOp(
        clip=dict(TINY, checkpoint=ckpt),
        class_names=NAMES,
        ctx_init='a photo of a',
        csc=True)
    csc.init_weights()
    for k in range(len(NAMES)):
        torch.testing.assert_close(csc.prompt_learner.ctx[k].detach(), want)


@pytest.mark.parametrize('position', ['middle', 'front'])
def test_class_token_positions(position):
    model = _model(n_ctx=4, class_token_position=position)
    pl = model.prompt_learner
    tokens = pl.encode_names(NAMES)
    prompts = pl(tokens)
    emb = model.clip.token_embedding
    i = NAMES.index('semi circle')
    n = tokens.name_lens[i]
    assert n == 2
    name = emb(tokenize('semi circle', 16))[0, 1:1 + n]
    if position == 'front':
        torch.testing.assert_close(prompts[i, 1:1 + n], name)
        torch.testing.assert_close(prompts[i, 1 + n:5 + n], pl.ctx)
    else:
        torch.testing.assert_close(prompts[i, 1:3], pl.ctx[:2])
        torch.testing.assert_close(prompts[i, 3:3 + n], name)
        torch.testing.assert_close(prompts[i, 3 + n:5 + n], pl.ctx[2:])
    # the end-of-text position is unchanged: its id is still the argmax
    assert prompts.shape == (5, 16, 32)


def test_class_specific_context():
    model = _model(n_ctx=3, csc=True, num_base=3)
    assert model.prompt_learner.ctx.shape == (3, 3, 32)
    feats = model.text_features('train')
    assert feats.shape == (3, 32)
    with pytest.raises(ValueError, match='unified'):
        _model(n_ctx=3, csc=True, nfl=dict())


def test_nfl_loss_and_base_to_novel_training():
    u = F.normalize(torch.randn(3, 8), dim=-1)
    assert nfl_loss(u, u) < 1e-6
    a, b = torch.eye(2, 8), torch.eye(2, 8).roll(1, dims=1)
    assert nfl_loss(a, b).item() == pytest.approx(1.0)
    assert nfl_loss(a, b, 'mse').item() == pytest.approx(2.0)
    model = _model(n_ctx=4, num_base=3, nfl=dict(names='novel', weight=2.))
    assert model.train_names == NAMES[:3]
    assert model.nfl_names == NAMES[3:]
    x = torch.randn(2, 3, 32, 32)
    losses = model.loss(x, [DataSample().set_gt_label(i) for i in (0, 2)])
    assert set(losses) == {'loss_ce', 'loss_nfl', 'acc'}
    assert losses['loss_nfl'].requires_grad
    with pytest.raises(ValueError, match='training classes'):
        model.loss(x, [DataSample().set_gt_label(4)] * 2)
    out = model.predict(x)
    assert out[0].pred_score.shape == (5, )  # scored against all names


def test_names_from_the_hook_and_missing_names():
    torch.manual_seed(0)
    model = CoOp(clip=TINY, n_ctx=2)
    with pytest.raises(RuntimeError, match='PromptClassNamesHook'):
        model.text_features()
    model.set_class_names(NAMES, num_base=2)
    assert model.text_features('train').shape == (2, 32)
