# Copyright (c) mmssl contributors. All rights reserved.
"""CoOp prompt learner, frozen CLIP, NFL."""
import pytest
import torch
import torch.nn.functional as F
from mmpretrain.structures import DataSample

from mmssl.models.clip import tokenize
from mmssl.models.prompt import CoOp, nfl_loss
from mmssl.testing.checkpoints import save_as_backbone

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
    # the name tokens are recomputed from the names, never saved
    assert dict(tokens.state_dict()) == {}
    assert [k for k in model.state_dict()
            if not k.startswith('clip.')] == ['prompt_learner.ctx']
    model.eval()
    model.train()  # the default mode is training
    assert model.prompt_learner.training
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
    save_as_backbone(trained, str(ckpt), prefix='clip.')
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


# ------------------------------------------------ points of the method
def _zero_shot_feats(clip, names, template='a photo of a {}.'):
    """Hand-written prompt features, independent of the prompt learner."""
    with torch.no_grad():
        return F.normalize(
            clip.encode_text(
                tokenize([template.format(n) for n in names], 16)),
            dim=-1)


def test_random_context_init_and_default_length():
    """Random init N(0, 0.02^2) with M = 16 context tokens by default."""
    from mmssl.models.prompt import PromptLearner
    torch.manual_seed(0)
    pl = PromptLearner(torch.nn.Embedding(10, 512), 77)
    assert pl.ctx.shape == (16, 512) and pl.n_ctx == 16
    assert abs(pl.ctx.std().item() - 0.02) < 1e-3
    assert abs(pl.ctx.mean().item()) < 1e-3
    import inspect
    assert inspect.signature(CoOp).parameters['n_ctx'].default == 16
    assert pl.prompt_prefix == ' '.join(['X'] * 16)


def test_logits_are_exp_logit_scale_times_cosine():
    """logits = exp(logit_scale) * cos(image, text); CE over the training
    (base) names only; the CLIP temperature is read, not a constant."""
    model = _model(ctx_init='a photo of a', num_base=3)
    with torch.no_grad():
        model.clip.logit_scale.fill_(torch.tensor(7.0).log())
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        img = F.normalize(model.clip.encode_image(x), dim=-1)
    txt = _zero_shot_feats(model.clip, NAMES)
    want = 7.0 * img @ txt.t()
    with torch.no_grad():
        torch.testing.assert_close(model(x), want, atol=1e-5, rtol=0)
        torch.testing.assert_close(
            model.logits(x, 'train'), want[:, :3], atol=1e-5, rtol=0)
    labels = torch.tensor([0, 2, 1, 0])
    losses = model.loss(x, [DataSample().set_gt_label(int(y)) for y in labels])
    torch.testing.assert_close(
        losses['loss_ce'].detach(),
        F.cross_entropy(want[:, :3], labels),
        atol=1e-5,
        rtol=0)
    assert losses['acc'] == (want[:, :3].argmax(-1) == labels).float().mean()
    # the softmax of predict uses the same scale
    scores = model.predict(x)
    torch.testing.assert_close(
        torch.stack([s.pred_score for s in scores]),
        want.softmax(-1),
        atol=1e-5,
        rtol=0)


@pytest.mark.parametrize('weight', [1.0, 2.5])
def test_nfl_loss_value_sign_and_weight(weight):
    """loss_nfl = +lambda * mean_k (1 - cos(u_k, z_k)): u the learned
    prompt with the novel names, z their zero-shot ensemble; it is added
    to the CE in the total loss."""
    templates = ['a drawing of a {}.', 'itap of a {}.']
    model = _model(
        ctx_init='a photo of a',
        num_base=3,
        nfl=dict(names='novel', weight=weight, templates=templates))
    u = _zero_shot_feats(model.clip, NAMES[3:])  # the untrained prompt
    z = F.normalize(
        torch.stack([
            _zero_shot_feats(model.clip, NAMES[3:], t) for t in templates
        ]).mean(0),
        dim=-1)
    torch.testing.assert_close(model.nfl_targets(), z, atol=1e-6, rtol=0)
    want = weight * (1 - (u * z).sum(-1)).mean()
    assert want > 1e-3
    x = torch.randn(2, 3, 32, 32)
    losses = model.loss(x, [DataSample().set_gt_label(i) for i in (0, 2)])
    torch.testing.assert_close(
        losses['loss_nfl'].detach(), want, atol=1e-6, rtol=0)
    total, _ = model.parse_losses(losses)
    torch.testing.assert_close(total.detach(), (losses['loss_ce'] +
                                                losses['loss_nfl']).detach())
    # its gradient pulls u toward z: a small step on L_nfl lowers it
    model.prompt_learner.ctx.grad = None
    losses['loss_nfl'].backward()
    with torch.no_grad():
        model.prompt_learner.ctx -= 1e-2 * model.prompt_learner.ctx.grad
        after = model.loss(x, [DataSample().set_gt_label(i)
                               for i in (0, 2)])['loss_nfl']
    assert after < losses['loss_nfl']


def test_nfl_mse_and_name_list():
    model = _model(
        ctx_init='a photo of a', nfl=dict(names=['star', 'cross'], loss='mse'))
    assert model.nfl_names == ['star', 'cross']
    u = _zero_shot_feats(model.clip, ['star', 'cross'])
    z = model.nfl_targets()
    x = torch.randn(2, 3, 32, 32)
    losses = model.loss(x, [DataSample().set_gt_label(i) for i in (0, 4)])
    want = (u - z).pow(2).sum(-1).mean()
    torch.testing.assert_close(
        losses['loss_nfl'].detach(), want, atol=1e-6, rtol=0)
    # the hand value of the pure function, unnormalised inputs
    a, b = torch.tensor([[3., 0.]]), torch.tensor([[1., 1.]])
    assert nfl_loss(a, b).item() == pytest.approx(1 - 2**-0.5)
    assert nfl_loss(a, b, 'mse').item() == pytest.approx(2 - 2**0.5)


def test_nfl_ensemble_target_option():
    """templates='openai_imagenet' (+ the data set's template) gives the
    normalised mean of the per-template normalised features."""
    from mmssl.models.clip import (OPENAI_IMAGENET_TEMPLATES,
                                   zero_shot_text_features)
    model = _model(
        n_ctx=4,
        num_base=3,
        nfl=dict(templates=['openai_imagenet', 'a photo of a {}, a shape.']))
    assert len(model.nfl_cfg['templates']) == 81
    per = torch.stack([
        _zero_shot_feats(model.clip, NAMES[3:], t)
        for t in list(OPENAI_IMAGENET_TEMPLATES) +
        ['a photo of a {}, a shape.']
    ])  # (81, 2, E)
    want = F.normalize(per.mean(0), dim=-1)
    torch.testing.assert_close(model.nfl_targets(), want, atol=1e-6, rtol=0)
    single = zero_shot_text_features(model.clip, NAMES[3:])
    assert (model.nfl_targets() - single).norm() > 1e-3


def test_nfl_config_errors():
    with pytest.raises(KeyError, match="'lambda'"):
        _model(n_ctx=4, nfl={'lambda': 1.0})
    with pytest.raises(ValueError, match='nfl.loss'):
        _model(n_ctx=4, nfl=dict(loss='l1'))
    with pytest.raises(ValueError, match='nfl.weight'):
        _model(n_ctx=4, nfl=dict(weight=-1))
    with pytest.raises(ValueError, match='nfl.names'):
        _model(n_ctx=4, nfl=dict(names='base'))
    with pytest.raises(ValueError, match='template'):
        _model(n_ctx=4, nfl=dict(templates=['a photo of a']))
    model = _model(n_ctx=4, nfl=dict())  # 'novel' without num_base
    with pytest.raises(ValueError, match='num_base'):
        model.nfl_names
    # the defaults: the novel names, lambda 1, cosine, one template
    assert model.nfl_cfg == dict(
        names='novel',
        weight=1.0,
        loss='cosine',
        templates=['a photo of a {}.'])


def test_novel_images_are_scored_among_the_novel_names():
    """predict scores all names; its argmax over the novel columns equals
    the prediction of a CoOp given only the novel names (the protocol), and
    the metric reads it that way."""
    from mmssl.evaluation.metrics import base_novel_accuracy
    model = _model(n_ctx=4, num_base=3)
    x = torch.randn(16, 3, 32, 32)
    scores = torch.stack([s.pred_score for s in model.predict(x)])
    assert scores.shape == (16, 5)
    with torch.no_grad():
        novel_only = model.logits(x, 'all')[:, 3:]
        model.set_class_names(NAMES[3:])
        alone = model.logits(x, 'all')
        model.set_class_names(NAMES[:3])
        base_alone = model.logits(x, 'all')
    torch.testing.assert_close(alone, novel_only)
    labels = torch.tensor([i % 5 for i in range(16)])
    out = base_novel_accuracy(scores, labels, num_base=3)
    is_base = labels < 3
    want_b = (base_alone[is_base].argmax(-1) == labels[is_base]).float()
    want_n = (alone[~is_base].argmax(-1) + 3 == labels[~is_base]).float()
    assert out['base'] == pytest.approx(want_b.mean().item() * 100)
    assert out['novel'] == pytest.approx(want_n.mean().item() * 100)


def test_class_names_hook_gives_names_and_num_base():
    from types import SimpleNamespace

    from mmssl.engine.hooks import PromptClassNamesHook
    torch.manual_seed(0)
    model = CoOp(clip=TINY, n_ctx=2)
    meta = dict(all_classes=NAMES, classes=NAMES[:3], num_base=3)
    loader = SimpleNamespace(dataset=SimpleNamespace(metainfo=meta))
    runner = SimpleNamespace(model=model, train_dataloader=loader)
    PromptClassNamesHook().before_train(runner)
    assert model.class_names == NAMES and model.num_base == 3
    assert model.train_names == NAMES[:3]
    # names given in the config are kept
    fixed = _model(n_ctx=2, num_base=2)
    runner.model = fixed
    PromptClassNamesHook().before_train(runner)
    assert fixed.num_base == 2
    # a data set without base / novel split: all names, all trained
    model = CoOp(clip=TINY, n_ctx=2)
    runner.model = model
    loader.dataset.metainfo = dict(classes=NAMES)
    PromptClassNamesHook().before_train(runner)
    assert model.train_names == NAMES and model.num_base is None


def test_nfl_is_zero_for_the_hand_written_prompt():
    """Context = the words of the target template: u = z, L_nfl = 0 (also
    for names written with '_', read as spaces on both sides)."""
    model = _model(
        ctx_init='a photo of a',
        nfl=dict(
            names=['semi_circle', 'star'], templates=['a photo of a {}.']))
    x = torch.randn(2, 3, 32, 32)
    losses = model.loss(x, [DataSample().set_gt_label(i) for i in (0, 1)])
    assert losses['loss_nfl'].abs() < 1e-6


# ------------------------------------------------ ranges and checks
def test_context_length_range():
    """M context tokens need 1 <= M and [SOS, M ctx, name, '.'] plus EOT
    within L: M = L - 3 is the longest, L - 2 and 0 are refused."""
    from mmssl.models.prompt import PromptLearner
    emb = torch.nn.Embedding(10, 8)
    assert PromptLearner(emb, 16, n_ctx=1).n_ctx == 1
    assert PromptLearner(emb, 16, n_ctx=13).n_ctx == 13
    for n_ctx in (0, 14):
        with pytest.raises(ValueError, match=f'n_ctx={n_ctx} does not fit'):
            PromptLearner(emb, 16, n_ctx=n_ctx)


def test_class_specific_context_rows_must_match_the_names():
    """With csc, one context row per name: more names than rows is an
    error even when the context length equals the number of names."""
    model = _model(n_ctx=5, csc=True, num_classes=3)
    pl = model.prompt_learner
    assert pl.ctx.shape == (3, 5, 32)  # the given num_classes is kept
    with pytest.raises(ValueError, match='has 3 rows, got 5 names'):
        pl(pl.encode_names(NAMES))
    assert pl(pl.encode_names(NAMES[:3])).shape == (3, 16, 32)


def test_base_count_and_label_range():
    model = _model(n_ctx=2)
    for bad in (0, 6):
        with pytest.raises(ValueError, match=f'num_base={bad} outside 1..5'):
            model.set_class_names(NAMES, num_base=bad)
    model.set_class_names(NAMES, num_base=5)
    assert model.train_names == NAMES
    model.set_class_names(NAMES, num_base=1)
    assert model.train_names == NAMES[:1]
    model.set_class_names(NAMES, num_base=3)
    x = torch.randn(2, 3, 32, 32)
    # label 3 is the first novel class: not a training class
    with pytest.raises(ValueError, match=r'label \(3\) is not among the 3'):
        model.loss(x, [DataSample().set_gt_label(i) for i in (0, 3)])
    assert set(model.loss(x, [DataSample().set_gt_label(2)] * 2)) == \
        {'loss_ce', 'acc'}


@pytest.mark.parametrize('weight', [0, 0.5])
def test_nfl_weight_zero_and_fractional(weight):
    """lambda = 0 is allowed and adds no NFL term; a fractional lambda
    scales the cosine loss."""
    model = _model(n_ctx=4, num_base=3, nfl=dict(weight=weight))
    assert model.nfl_cfg['weight'] == weight
    x = torch.randn(2, 3, 32, 32)
    losses = model.loss(x, [DataSample().set_gt_label(i) for i in (0, 1)])
    if weight == 0:
        assert set(losses) == {'loss_ce', 'acc'}
    else:
        with torch.no_grad():
            want = weight * nfl_loss(
                model.text_features('nfl'), model.nfl_targets())
        torch.testing.assert_close(losses['loss_nfl'].detach(), want)


def test_predicted_label_is_the_highest_score():
    model = _model(n_ctx=4)
    out = model.predict(torch.randn(6, 3, 32, 32))
    scores = torch.stack([ds.pred_score for ds in out])
    labels = torch.stack([ds.pred_label for ds in out]).view(-1)
    assert torch.equal(labels, scores.argmax(-1))


def test_cached_name_tokens_follow_the_context_device():
    """The cached prompts of a name set are moved to the context's device
    when they are used (the cache is not a submodule)."""
    model = _model(n_ctx=4)
    tokens = model._name_tokens('all')
    assert model._name_tokens('all') is tokens  # cached
    pl = model.prompt_learner
    pl.ctx = torch.nn.Parameter(pl.ctx.detach().to('meta'))  # "moved"
    again = model._name_tokens('all')
    assert again is tokens
    assert {
        t.device.type
        for t in (again.token_ids, again.prefix, again.suffix)
    } == {'meta'}
