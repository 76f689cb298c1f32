# Copyright (c) mmssl contributors. All rights reserved.
"""The text modality of data2vec 2.0: mmssl.D2V2TextEncoder in the shared
core (student on visible tokens, teacher on the student's embedding,
targets and loss by hand) and as the encoder of MLM and fine-tuning."""
from unittest import mock

import pytest
import torch
import torch.nn.functional as F
from mmengine.structures import BaseDataElement

from mmssl.models.backbones import D2V2Block, D2V2TextEncoder
from mmssl.models.selfsup.data2vec2 import Data2VecV2
from mmssl.registry import MODELS
from mmssl.testing.checkpoints import assert_init_cfg_loads

V, L, C = 50, 12, 16
ARCH = dict(embed_dims=C, num_layers=3, num_heads=2, feedforward_channels=32)


def encoder(**kw):
    kw = dict(arch=ARCH, vocab_size=V, max_position=L, **kw)
    return D2V2TextEncoder(**kw)


def d2v2(num_masks=4, top_k=2, **kw):
    cfg = dict(
        type='mmssl.Data2VecV2',
        data_preprocessor=dict(type='BaseDataPreprocessor'),
        backbone=dict(
            type='mmssl.D2V2TextEncoder',
            arch=ARCH,
            vocab_size=V,
            max_position=L,
            with_pooler=False),
        mask_generator=dict(
            type='mmssl.RandomTokenMasker',
            mask_ratio=0.48,
            num_masks=num_masks),
        neck=dict(
            type='mmssl.D2V2ConvDecoder1d',
            in_channels=C,
            embed_dims=C,
            num_layers=2,
            kernel_size=9),
        head=dict(
            type='mmssl.D2V2Head',
            top_k=top_k,
            instance_norm=True,
            layer_norm=False,
            cls_loss_weight=0.,
            loss=dict(type='mmssl.D2V2RegressionLoss', scale=1.)),
        ema=dict(momentum=1e-4, end_momentum=1e-5, anneal_iters=100000))
    cfg.update(kw)
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def ids(b=2, n=L, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(5, V, (b, n), generator=g)


def test_encoder_shapes_init_and_interfaces():
    torch.manual_seed(0)
    enc = encoder().eval()
    assert enc.num_extra_tokens == 0
    assert enc.teacher_input == 'student_embedding'
    assert enc.token_layout(ids()) == (L, )
    assert enc.hidden_size == enc.embedding_size == enc.embed_dims == C
    assert enc.word_embeddings is enc.token_embed
    # BERT init: N(0, 0.02), the padding row zero, no extra tokens
    assert abs(enc.token_embed.weight.std().item() - 0.02) < 0.005
    assert torch.all(enc.token_embed.weight[0] == 0)
    seq, pooled = enc(ids(), torch.zeros_like(ids()), torch.ones_like(ids()))
    assert seq.shape == (2, L, C) and pooled.shape == (2, C)
    mask = torch.zeros(6, L, dtype=torch.bool)
    mask[:, :5] = True
    latent, m, restore = enc(ids(), mask=mask, num_clones=3)
    assert latent.shape == (6, L - 5, C) and restore.shape == (6, L)
    outs = enc.forward_targets(ids(), 2)
    assert len(outs) == 2 and outs[0].shape == (2, L, C)
    for arch, dims in (('base', (768, 12)), ('tiny', (64, 4))):
        with torch.device('meta'):
            big = D2V2TextEncoder(arch=arch, vocab_size=100)
        assert (big.embed_dims, big.num_layers) == dims
        assert big.max_position == 512


def test_removed_tokens_do_not_influence_visible_outputs():
    torch.manual_seed(0)
    enc = encoder().eval()
    x = ids(1)
    mask = torch.zeros(1, L, dtype=torch.bool)
    mask[0, [1, 4, 5, 9]] = True
    a, _, _ = enc(x, mask=mask)
    y = x.clone()
    y[0, [1, 4, 5, 9]] = torch.tensor([7, 8, 9, 10])
    b, _, _ = enc(y, mask=mask)
    torch.testing.assert_close(a, b, atol=0, rtol=0)
    # and equals the blocks run on the kept embedded tokens by hand
    h = enc.embed(x)[0][:, ~mask[0]]
    for layer in enc.layers:
        h, _ = layer(h)
    torch.testing.assert_close(a, h)


def test_padding_keys_are_left_out_and_the_unpadded_block_is_unchanged():
    torch.manual_seed(0)
    enc = encoder().eval()
    x = ids(1, 7)
    padded = torch.cat([x, torch.zeros(1, 5, dtype=torch.long)], 1)
    att = torch.cat([torch.ones(1, 7), torch.zeros(1, 5)], 1).long()
    seq, pooled = enc(padded, None, att)
    ref, ref_pooled = enc(x)
    torch.testing.assert_close(seq[:, :7], ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(pooled, ref_pooled, atol=1e-5, rtol=1e-5)
    # the block's unmasked path is the image path itself
    blk = D2V2Block(C, 2, 32).eval()
    h = torch.randn(2, 5, C)
    out = blk(h)[0]
    torch.testing.assert_close(
        blk(h, torch.zeros(2, 5, dtype=torch.bool))[0],
        out,
        atol=1e-6,
        rtol=1e-6)
    assert torch.equal(blk(h, None)[0], out)
    with pytest.raises(ValueError, match='packed sequences'):
        enc(padded, None, att, mask=torch.zeros(1, 12, dtype=torch.bool))


def test_too_long_text_and_foreign_ids_are_refused_by_name():
    enc = encoder()
    with pytest.raises(ValueError) as err:
        enc(ids(1, L + 3))
    msg = str(err.value)
    assert f'{L + 3} tokens' in msg and f'max_position={L}' in msg
    assert 'tokens_per_sample' in msg and 'cut the text' in msg
    with pytest.raises(ValueError, match='vocabulary'):
        enc(torch.full((1, 4), V))
    with pytest.raises(ValueError, match='num_heads'):
        encoder_arch = dict(ARCH, num_heads=3)
        D2V2TextEncoder(arch=encoder_arch, vocab_size=V)


def test_masks_remove_48_percent_of_every_clone():
    model = d2v2(num_masks=8)
    seen = {}
    orig = model.head.loss

    def spy(pred, targets, mask, cls_pred=None):
        seen.update(pred=pred, targets=targets, mask=mask, cls=cls_pred)
        return orig(pred, targets, mask, cls_pred)

    model.head.loss = spy
    x = ids(3, 50 if L >= 50 else L)
    model.loss(x, None)
    # int(12 * 0.52) = 6 kept, 6 removed per row; 48 % of 50 tokens: 24
    assert seen['mask'].shape == (24, L)
    assert (seen['mask'].sum(-1) == L - int(L * 0.52)).all()
    assert seen['cls'] is None  # no CLS token, no CLS term
    counts = model.mask_generator(2, (50, ), 'cpu').sum(-1)
    assert (counts == 24).all()


def test_teacher_runs_once_on_the_student_embedding():
    torch.manual_seed(0)
    model = d2v2(num_masks=3)
    model.train()
    calls = []
    teacher = model.teacher.module
    orig = teacher.forward_targets

    def spy(x, k, embedded=False):
        calls.append((x.detach().clone(), embedded))
        return orig(x, k, embedded=embedded)

    teacher.forward_targets = spy
    x = ids(2)
    torch.manual_seed(1)
    with mock.patch.object(
            model.head, 'loss', wraps=model.head.loss) as head_loss:
        losses = model.loss(x, None)
    assert len(calls) == 1 and calls[0][1] is True
    # the teacher's input is the student's local encoder output (eval mode:
    # no dropout), not the teacher's own embedding
    model.eval()
    torch.testing.assert_close(calls[0][0].shape, (2, L, C))
    # the teacher holds no copy of the local encoder it never runs
    for name in ('token_embed', 'pos_embed', 'ln_embed'):
        assert getattr(teacher, name) is None
    local = sum(p.numel() for n, p in model.backbone.named_parameters()
                if n.split('.')[0] in ('token_embed', 'pos_embed', 'ln_embed'))
    assert local > 0
    assert sum(p.numel() for p in teacher.parameters()) == sum(
        p.numel() for p in model.backbone.parameters()) - local
    assert not any('token_embed' in k
                   for k in model.state_dict() if k.startswith('teacher.'))
    student_emb = model.backbone.embed(x)[0]
    t1 = model.teacher_targets(x)
    t2 = model.head.build_targets(orig(student_emb, 2, embedded=True))
    torch.testing.assert_close(t1, t2)
    # one target per sequence, shared by its M clones (repeat_interleave)
    assert head_loss.call_args.args[1].shape == (2, L, C)
    losses['loss_reg'].backward()
    assert all(p.grad is None for p in teacher.parameters())


def test_targets_and_loss_by_hand():
    """y = mean over the top-K layers of IN(a_l) (no final LN); loss =
    sum over channels of the squared error at removed tokens / their
    number (scale 1, no CLS term)."""
    torch.manual_seed(0)
    model = d2v2(num_masks=2, top_k=2)
    layers = [torch.randn(2, L, C) for _ in range(3)]
    y = model.head.build_targets(layers)
    hand = torch.zeros(2, L, C)
    for a in layers[-2:]:
        mu = a.mean(1, keepdim=True)
        var = a.var(1, unbiased=False, keepdim=True)
        hand += (a - mu) / torch.sqrt(var + 1e-5) / 2
    torch.testing.assert_close(y, hand, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(y, F.layer_norm(y, (C, )), atol=1e-2)
    pred = torch.randn(4, L, C)
    mask = torch.zeros(4, L, dtype=torch.bool)
    mask[:, :6] = True
    losses = model.head.loss(pred, y, mask)
    yy = y.repeat_interleave(2, 0)
    expected = ((pred - yy)**2)[mask].sum() / mask.sum()
    torch.testing.assert_close(losses['loss_reg'], expected)
    assert 'loss_cls' not in losses


def test_one_step_trains_the_student_and_the_hook_moves_the_teacher():
    torch.manual_seed(0)
    model = d2v2()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    before = model.backbone.layers[0].ffn.layers[1].weight.clone()
    loss = model.loss(ids(4), None)['loss_reg']
    loss.backward()
    opt.step()
    assert not torch.equal(before,
                           model.backbone.layers[0].ffn.layers[1].weight)
    t = model.teacher.module.layers[0].ffn.layers[1].weight.clone()
    model.update_teacher()
    assert not torch.equal(t,
                           model.teacher.module.layers[0].ffn.layers[1].weight)
    assert isinstance(model, Data2VecV2)


def _mlm_samples(b, n):
    out = []
    for _ in range(b):
        s = BaseDataElement()
        s.mlm_positions = torch.arange(3)
        s.mlm_labels = torch.randint(5, V, (3, ))
        s.mlm_weights = torch.ones(3)
        out.append(s)
    return out


def test_the_same_encoder_serves_mlm_and_the_classifier():
    torch.manual_seed(0)
    bb = dict(
        type='mmssl.D2V2TextEncoder', arch=ARCH, vocab_size=V, max_position=L)
    mlm = MODELS.build(
        dict(type='mmssl.AlbertPretrainer', backbone=bb, sop_head=None))
    x = ids(2)
    losses = mlm.loss(dict(input_ids=x), _mlm_samples(2, L))
    assert torch.isfinite(losses['loss_mlm'])
    assert mlm.mlm_head.decoder_weight is mlm.backbone.token_embed.weight
    clf = MODELS.build(
        dict(
            type='mmssl.TextClassifier',
            backbone=bb,
            head=dict(type='mmssl.TextClsHead', num_classes=2)))
    assert clf.head.in_channels == C
    # pretrained weights load through init_cfg with the 'backbone.' prefix
    assert clf(dict(input_ids=x), mode='tensor').shape == (2, 2)


def test_finetuning_beats_the_majority_class():
    """A learnable pair of classes (does token 7 occur?), 60 % majority:
    the classifier on the text encoder learns it."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    x = torch.randint(8, V, (160, L), generator=g)
    y = (torch.rand(160, generator=g) < 0.4).long()
    for i in torch.nonzero(y).flatten():
        x[i, torch.randint(1, L, (2, ), generator=g)] = 7
    clf = MODELS.build(
        dict(
            type='mmssl.TextClassifier',
            backbone=dict(
                type='mmssl.D2V2TextEncoder',
                arch=ARCH,
                vocab_size=V,
                max_position=L,
                drop_rate=0.,
                attn_drop_rate=0.),
            head=dict(type='mmssl.TextClsHead', num_classes=2, dropout=0.)))
    opt = torch.optim.AdamW(clf.parameters(), lr=3e-3)
    clf.train()
    for _ in range(12):
        for i in range(0, 128, 16):
            samples = [
                BaseDataElement(gt_label=t) for t in y[i:i + 16].unbind()
            ]
            loss = clf.loss(dict(input_ids=x[i:i + 16]), samples)['loss']
            opt.zero_grad()
            loss.backward()
            opt.step()
    clf.eval()
    with torch.no_grad():
        pred = clf(dict(input_ids=x[128:]), mode='tensor').argmax(-1)
    acc = (pred == y[128:]).float().mean().item()
    majority = max(y[128:].float().mean().item(),
                   1 - y[128:].float().mean().item())
    assert acc > majority + 0.1, (acc, majority)


@pytest.mark.parametrize('arch,row', [('base', (768, 12, 12, 3072)),
                                      ('small', (256, 4, 4, 1024)),
                                      ('tiny', (64, 4, 2, 256))])
def test_arch_table_row_by_row(arch, row):
    """(embed_dims, num_layers, num_heads, feedforward_channels); base is
    fairseq's text base (12 blocks, D 768, 12 heads, MLP 4x)."""
    with torch.device('meta'):
        enc = D2V2TextEncoder(arch=arch, vocab_size=100)
    block = enc.layers[0]
    assert (enc.embed_dims, len(enc.layers), block.attn.num_heads,
            block.ffn.layers[0][0].out_features) == row


def test_defaults_are_fairseqs_text_base():
    """dropout 0.1 (embedding, attention projection, post-MLP), attention
    dropout 0.1, FFN dropout 0, LayerNorm eps 1e-5 (``norm_eps`` of
    base_text_only_task.yaml), vocabulary 30000, padding id 0."""
    with torch.device('meta'):
        enc = D2V2TextEncoder(arch='tiny')
    assert enc.vocab_size == 30000 and enc.pad_token_id == 0
    assert enc.token_embed.padding_idx == 0
    block = enc.layers[0]
    assert enc.drop_embed.p == 0.1 and block.post_ffn_drop.p == 0.1
    assert block.attn.attn_drop == 0.1 and block.attn.proj_drop.p == 0.1
    norms = [enc.ln_embed
             ] + [m for layer in enc.layers for m in (layer.ln1, layer.ln2)]
    assert {m.eps for m in norms} == {1e-5}


def test_argument_ranges():
    enc = encoder(pad_token_id=V - 1)  # the last id may pad
    assert torch.all(enc.token_embed.weight[V - 1] == 0)
    with pytest.raises(ValueError, match='pad_token_id'):
        encoder(pad_token_id=V)
    for key in ('drop_rate', 'attn_drop_rate', 'ffn_drop_rate',
                'drop_path_rate'):
        with pytest.raises(ValueError, match=key):
            encoder(**{key: 1.})
    with pytest.raises(ValueError, match='needs the keys'):
        D2V2TextEncoder(arch=dict(embed_dims=C, num_layers=2), vocab_size=V)
    with pytest.raises(ValueError, match='needs the keys'):
        D2V2TextEncoder(arch=[C, 2, 2, 32], vocab_size=V)
    with pytest.raises(ValueError, match='integer token ids'):
        encoder()(ids().float())
    with pytest.raises(ValueError, match='integer token ids'):
        encoder()(ids()[0])


def test_bert_init_zeroes_every_linear_bias():
    enc = encoder()
    linears = [m for m in enc.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 4 * 3 + 1  # qkv, proj, 2 FFN per block; pooler
    for m in linears:
        assert torch.all(m.bias == 0)
        assert abs(m.weight.std().item() - 0.02) < 0.01


def test_init_weights_loads_the_init_cfg_checkpoint(tmp_path):
    assert_init_cfg_loads(encoder, tmp_path)


def test_embedding_sum_layout_pooler_and_plain_paths():
    """embed = LN(token + position) (dropout off in eval); the layout is
    (T, ); the pooler is tanh(Linear) of token 0; ``mask=False`` is the
    plain path; train() returns the module in training mode."""
    torch.manual_seed(0)
    enc = encoder().eval()
    x = ids(3, 5)  # B != T
    tokens, layout = enc.embed(x)
    expected = F.layer_norm(
        enc.token_embed.weight[x] + enc.pos_embed.weight[:5], (C, ),
        enc.ln_embed.weight, enc.ln_embed.bias, 1e-5)
    torch.testing.assert_close(tokens, expected)
    assert layout == (5, )
    seq, pooled = enc(x)
    torch.testing.assert_close(pooled, torch.tanh(enc.pooler(seq[:, 0])))
    plain = enc(x, mask=False)
    assert torch.equal(plain[0], seq) and torch.equal(plain[1], pooled)
    assert enc.train() is enc and enc.training and enc.layers[0].training


def test_no_cls_term_without_an_extra_token():
    """The text encoder puts no CLS before its tokens (E = 0): even with a
    CLS weight, nothing of the latent is taken for a CLS prediction."""
    model = d2v2(
        head=dict(
            type='mmssl.D2V2Head',
            top_k=2,
            layer_norm=False,
            cls_loss_weight=0.01,
            loss=dict(type='mmssl.D2V2RegressionLoss', scale=1.)))
    assert model.num_extra_tokens == 0
    with mock.patch.object(
            model.head, 'loss', wraps=model.head.loss) as head_loss:
        losses = model.loss(ids(2), None)
    assert head_loss.call_args.args[3] is None and 'loss_cls' not in losses


def test_the_step_embeds_the_text_once():
    """The student's masked path and the teacher share one embedding of
    the unmasked input (the reference's order, and no second local
    encoder pass)."""
    model = d2v2(num_masks=2)
    with mock.patch.object(
            model.backbone, 'embed', wraps=model.backbone.embed) as embed:
        model.loss(ids(2), None)
    assert embed.call_count == 1
