# Copyright (c) mmssl contributors. All rights reserved.
"""The data2vec 2.0 speech encoder: conv arithmetic, bad input, ALiBi,
padding, the shared core, and the speech targets and loss by hand."""
import math

import numpy as np
import pytest
import torch
import torch.nn as nn

from mmssl.models.backbones import D2V2AudioEncoder, D2V2Block, D2V2EncoderBase
from mmssl.models.backbones.d2v2_audio import alibi_slopes
from mmssl.models.selfsup.data2vec2 import Data2VecV2
from mmssl.registry import MODELS
from mmssl.testing.checkpoints import assert_init_cfg_loads

SMALL = [(8, 10, 5)] + [(8, 3, 2)] * 4 + [(8, 2, 2)] * 2


def _encoder(**kw):
    kw.setdefault(
        'arch',
        dict(
            embed_dims=32, num_layers=3, num_heads=4, feedforward_channels=64))
    kw.setdefault('feature_encoder_spec', SMALL)
    kw.setdefault('conv_pos_groups', 4)
    return D2V2AudioEncoder(**kw)


def _fairseq_lengths(n, spec):
    for _, k, s in spec:
        n = math.floor((n - k) / s + 1)
    return n


def test_frame_lengths_equal_the_conv_output_for_every_length():
    enc = _encoder()
    assert enc.receptive_field == 400
    lengths = list(range(
        400, 1400)) + [1599, 1600, 1919, 1920, 16000, 16319, 16320, 48123]
    expected = torch.tensor([_fairseq_lengths(n, SMALL) for n in lengths])
    assert torch.equal(enc.frame_lengths(torch.tensor(lengths)), expected)
    assert [enc.frame_lengths(n) for n in lengths] == expected.tolist()
    with torch.no_grad():
        for n in lengths[::37] + lengths[-8:]:
            frames = enc.local_features(torch.zeros(1, n)).shape[1]
            assert frames == enc.frame_lengths(n), n
            assert enc.token_layout(torch.zeros(2, n)) == (frames, )
    # the default stacks have wav2vec 2.0's arithmetic: 49 frames a second
    assert D2V2AudioEncoder('tiny').frame_lengths(16000) == 49
    assert enc.frame_lengths(399) == 0


def test_audio_shorter_than_the_receptive_field_is_refused():
    enc = _encoder()
    with pytest.raises(ValueError) as err:
        enc(torch.zeros(2, 399))
    msg = str(err.value)
    assert '399 samples' in msg and '400-sample receptive field' in msg
    assert 'min_samples=400' in msg


def test_audio_encoder_is_the_shared_core():
    enc = MODELS.build(dict(type='mmssl.D2V2AudioEncoder', arch='tiny'))
    assert isinstance(enc, D2V2EncoderBase)
    assert enc.num_extra_tokens == 0
    assert enc.teacher_input == 'student_embedding'
    assert (enc.embed_dims, enc.num_layers) == (64, 4)
    assert all(type(b) is D2V2Block for b in enc.layers)
    model = MODELS.build(_d2v2_cfg())
    assert type(model) is Data2VecV2
    base = D2V2AudioEncoder('base')
    assert (base.embed_dims, base.num_layers, base.num_heads) == (768, 12, 12)
    assert base.pos_kernel == 19 and len(base.pos_convs) == 5
    assert base.pos_convs[0].groups == 16
    assert [c.conv.out_channels for c in base.feature_extractor] == [512] * 7


def test_alibi_biases_by_hand():
    assert torch.allclose(
        alibi_slopes(4), torch.tensor([2.**-2, 2.**-4, 2.**-6, 2.**-8]))
    s8, s16 = alibi_slopes(8), alibi_slopes(16)
    assert torch.allclose(alibi_slopes(12), torch.cat([s8, s16[0::2][:4]]))
    enc = _encoder()
    with torch.no_grad():
        enc.alibi_scale.copy_(
            torch.tensor([1., 0.5, -1., 2.]).view(1, 4, 1, 1))
    pos = torch.tensor([[0, 3, 4], [1, 2, 7]])
    bias = enc.alibi(pos, torch.float32)
    slopes = alibi_slopes(4) * torch.tensor([1., 0.5, 0., 2.])  # clamp >= 0
    for r in range(2):
        for h in range(4):
            for i in range(3):
                for j in range(3):
                    want = -abs(int(pos[r, i]) - int(pos[r, j])) * slopes[h]
                    assert bias[r, h, i, j].item() == pytest.approx(want)


def test_block_bias_and_padding_by_hand():
    """Zero bias and no padding == the plain path; a padded key is ignored;
    the bias is added to the logits (checked against a hand softmax)."""
    torch.manual_seed(0)
    blk = D2V2Block(16, 4, 32).eval()
    x = torch.randn(2, 7, 16)
    a, ta = blk(x)
    c, tc = blk(x, torch.zeros(2, 7, dtype=torch.bool),
                torch.zeros(2, 4, 7, 7))
    torch.testing.assert_close(c, a, atol=1e-6, rtol=0)
    # padding the last key == running on the first six tokens alone
    pad = torch.zeros(2, 7, dtype=torch.bool)
    pad[:, -1] = True
    for bias in (None, torch.randn(2, 4, 7, 7)):
        out, _ = blk(x, pad, bias)
        alone, _ = blk(x[:, :6], None,
                       None if bias is None else bias[:, :, :6, :6])
        torch.testing.assert_close(out[:, :6], alone, atol=1e-5, rtol=0)
    # the attention output by hand with a bias
    bias = torch.randn(2, 4, 7, 7)
    at = blk.attn
    qkv = at.qkv(x).reshape(2, 7, 3, 4, 4).permute(2, 0, 3, 1, 4)
    w = (qkv[0] @ qkv[1].transpose(-1, -2)) / 2. + bias
    out = (w.softmax(-1) @ qkv[2]).transpose(1, 2).reshape(2, 7, 16)
    want = blk.ln1(x + at.proj(out))
    with torch.no_grad():
        got = blk.ln1(x + blk._masked_attn(x, None, bias))
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def test_padded_batch_gives_each_clip_its_own_features():
    torch.manual_seed(0)
    enc = _encoder()
    enc.eval()
    lengths = [4000, 2500, 1234]
    waves = [torch.randn(n) for n in lengths]
    batch = torch.zeros(3, max(lengths))
    for i, w in enumerate(waves):
        batch[i, :len(w)] = w
    frames = enc.frame_lengths(torch.tensor(lengths))
    with torch.no_grad():
        padded = enc.forward_plain(batch, frames)[0]
        for i, w in enumerate(waves):
            alone = enc(w[None])[0][0]
            assert alone.shape[0] == frames[i]
            torch.testing.assert_close(
                padded[i, :frames[i]], alone, atol=1e-5, rtol=1e-5)


def test_student_without_removed_frames_is_the_plain_path():
    torch.manual_seed(0)
    enc = _encoder()
    enc.eval()
    x = torch.randn(2, 3000)
    (T, ) = enc.token_layout(x)
    with torch.no_grad():
        latent, _, _ = enc(
            x, mask=torch.zeros(4, T, dtype=torch.bool), num_clones=2)
        plain = enc(x)[0]
        targets = enc.forward_targets(x, 1)[0]
    torch.testing.assert_close(latent[0::2], plain, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(latent[1::2], plain, atol=1e-5, rtol=1e-5)
    assert targets.shape == plain.shape


def test_student_embedding_is_computed_once_for_the_teacher():
    """One conv-extractor pass per step: Data2VecV2 embeds once and hands
    the same tensor to the student's masked path and to the teacher."""
    torch.manual_seed(0)
    model = MODELS.build(_d2v2_cfg())
    model.init_weights()
    x = torch.randn(2, 3200)
    calls, seen = [], {}
    orig_embed = model.backbone.embed
    orig_targets = model.teacher.module.forward_targets

    def embed(inp):
        out = orig_embed(inp)
        calls.append(out[0])
        return out

    def forward_targets(tokens, k, embedded=False):
        seen['tokens'], seen['embedded'] = tokens, embedded
        return orig_targets(tokens, k, embedded=embedded)

    model.backbone.embed = embed
    model.teacher.module.forward_targets = forward_targets
    model.loss(x, None)
    assert len(calls) == 1 and seen['embedded']
    assert torch.equal(seen['tokens'], calls[0].detach())
    # so the teacher keeps no copy of the conv feature extractor; what it
    # runs (positional convs, context norm, ALiBi scales, blocks) is EMA
    teacher = model.teacher.module
    assert teacher.feature_extractor is None and teacher.feature_proj is None
    assert {n.split('.')[0]
            for n, _ in teacher.named_parameters()
            } == {'pos_convs', 'ln_pre', 'alibi_scale', 'layers'}


def _d2v2_cfg(**kw):
    return dict(
        type='mmssl.Data2VecV2',
        data_preprocessor=dict(type='mmssl.AudioDataPreprocessor'),
        backbone=dict(
            type='mmssl.D2V2AudioEncoder',
            arch=dict(
                embed_dims=32,
                num_layers=3,
                num_heads=4,
                feedforward_channels=64),
            feature_encoder_spec=SMALL,
            conv_pos_groups=4),
        neck=dict(
            type='mmssl.D2V2ConvDecoder1d',
            in_channels=32,
            embed_dims=16,
            num_layers=2,
            kernel_size=7,
            groups=4,
            residual=True,
            projection_layers=1,
            input_dropout=0.,
            noise_std=kw.pop('noise_std', 0.01)),
        head=dict(
            type='mmssl.D2V2Head',
            top_k=2,
            instance_norm=True,
            layer_norm=False,
            cls_loss_weight=0.),
        ema=dict(momentum=0.1, end_momentum=0.01, anneal_iters=10),
        mask_generator=dict(
            type='mmssl.SpanMasker',
            mask_prob=0.5,
            mask_length=3,
            num_masks=3,
            seed=0),
        **kw)


def test_speech_targets_and_loss_by_hand():
    """Targets: the instance-normalised (over time, per channel) FFN outputs
    of the teacher's top 2 blocks, averaged, no final LayerNorm, taken on the
    student's conv features; loss: L2 over masked frames, summed over
    channels, / sqrt(C), averaged over masked frames; no CLS term."""
    torch.manual_seed(0)
    model = MODELS.build(_d2v2_cfg(noise_std=0.))
    model.init_weights()
    with torch.no_grad():  # a teacher that differs from the student
        for p in model.teacher.module.parameters():
            p.add_(0.01 * torch.randn_like(p))
    model.eval()
    x = torch.randn(2, 3200)
    (T, ) = model.backbone.token_layout(x)
    masks = torch.stack([model.mask_generator.masks(3, T) for _ in range(2)])
    model.mask_generator = lambda B, layout, device: masks
    teacher = model.teacher.module
    passes, forward_targets = [], teacher.forward_targets
    teacher.forward_targets = lambda *a, **k: passes.append(1) or \
        forward_targets(*a, **k)
    losses = model.loss(x, None)
    assert len(passes) == 1
    assert set(losses) == {'loss_reg', 'target_std', 'pred_std'}

    with torch.no_grad():
        tokens = model.backbone.embed(x)[0]
        layers = model.teacher.module.forward_targets(tokens, 2, embedded=True)
        y = np.zeros(tuple(tokens.shape))
        for a in layers:
            a = a.double().numpy()
            y += (a - a.mean(
                1, keepdims=True)) / np.sqrt(a.var(1, keepdims=True) + 1e-5)
        y /= 2
        flat = masks.flatten(0, 1)
        latent, _, ids_restore = model.backbone(x, flat, 3)
        pred = model.neck(latent, ids_restore, (T, )).double().numpy()
    yr = np.repeat(y, 3, axis=0)
    m = flat.numpy()
    want = ((pred - yr)**2).sum(-1)[m].mean() / math.sqrt(32)
    assert losses['loss_reg'].item() == pytest.approx(want, rel=1e-4)


def test_speech_step_trains_student_and_decoder_only():
    torch.manual_seed(0)
    model = MODELS.build(_d2v2_cfg())
    model.init_weights()
    model.train()
    losses = model.loss(torch.randn(2, 3200), None)
    losses['loss_reg'].backward()
    assert all(p.grad is None for p in model.teacher.parameters())
    assert model.backbone.feature_extractor[0].conv.weight.grad is not None
    assert model.neck.proj.weight.grad is not None
    assert model.backbone.alibi_scale.grad is not None


def test_layerdrop_skips_blocks_only_while_training():
    enc = _encoder(layerdrop=0.5)
    calls = []
    for layer in enc.layers:
        layer.register_forward_hook(lambda *a: calls.append(1))
    x = torch.randn(1, 2000)
    torch.manual_seed(0)
    with torch.no_grad():
        h = enc.context(enc.embed(x)[0])
        enc.train()
        for _ in range(100):
            enc.run_blocks(h, None)
        assert 100 < len(calls) < 200  # about half of 3 x 100
        calls.clear()
        assert len(enc.forward_targets(x, 3)) == 3  # the teacher path: all
        enc.eval()
        for _ in range(10):
            enc.run_blocks(h, None)
    assert len(calls) == 3 + 30


def _conv1d_extractor(enc, wave):
    """fairseq's formulation: Conv1d on (B, C, T), the LayerNorm over
    channels through transposes (or GroupNorm), GELU; -> (B, T, C)."""
    x = wave.unsqueeze(1)
    for layer in enc.feature_extractor:
        x = layer.conv(x)
        if layer.norm_type == 'layer':
            x = layer.norm(x.transpose(1, 2)).transpose(1, 2)
        elif layer.norm_type == 'group':
            x = layer.norm(x)
        x = torch.nn.functional.gelu(x)
    return x.transpose(1, 2)


@pytest.mark.parametrize('mode,bias', [('layer_norm', False),
                                       ('default', True)])
def test_channels_last_extractor_equals_the_conv1d_formulation(mode, bias):
    """The 1 x k channels-last conv2d path gives fairseq's Conv1d features
    and parameter gradients (to float rounding)."""
    torch.manual_seed(0)
    enc = D2V2AudioEncoder(
        arch='tiny', extractor_mode=mode, conv_bias=bias).double().train()
    for p in enc.feature_extractor.parameters():  # non-trivial affine / bias
        torch.nn.init.normal_(p, 0.5 if p.dim() == 1 else 0., 0.3)
    wave = torch.randn(3, 4000, dtype=torch.float64)
    weight = torch.randn(3, 12, 32, dtype=torch.float64)

    def run(fn):
        enc.zero_grad()
        out = fn(wave)
        (out * weight).sum().backward()
        return out.detach(), [
            p.grad.clone() for p in enc.feature_extractor.parameters()
        ]

    out, grads = run(enc.local_features)
    ref, ref_grads = run(lambda w: _conv1d_extractor(enc, w))
    assert out.shape == ref.shape == (3, 12, 32)
    for a, r in zip([out] + grads, [ref] + ref_grads):
        torch.testing.assert_close(a, r, rtol=1e-9, atol=1e-9)


def _assert_channels_last_convs(rec, num_convs, ops):
    """Every conv wrote a channels-last map and ``ops`` saw contiguous
    memory (the gradient of a sum is an expanded, stride-0 tensor)."""
    convs = rec.named('convolution')
    assert len(convs) == num_convs
    for call in convs:
        assert call.outputs[0].is_contiguous(
            memory_format=torch.channels_last), call.outputs[0].stride()
    for op in ops:
        ts = [t for t in rec.inputs(op) if t.dim() >= 3]
        assert len(ts) >= num_convs, op
        assert all(t.is_contiguous() or 0 in t.stride() for t in ts), op


def test_extractor_runs_channels_last_without_layout_copies():
    """Every conv writes a channels-last (B, C, 1, T) map, so the LayerNorm
    over channels and GELU read contiguous (B, T, C) memory forward and
    backward (no transposing copies, GELU's vectorised kernels)."""
    from mmssl.testing.ops import OpRecorder
    enc = D2V2AudioEncoder(arch='tiny')
    with OpRecorder() as rec:
        enc.local_features(torch.randn(2, 4000)).pow(2).sum().backward()
    _assert_channels_last_convs(
        rec, 7, ('native_layer_norm', 'native_layer_norm_backward', 'gelu',
                 'gelu_backward'))


def test_positional_convs_run_channels_last():
    """The positional conv stack keeps the frames' (B, T, C) memory: its
    LayerNorms and GELUs read contiguous memory forward and backward."""
    from mmssl.testing.ops import OpRecorder
    enc = D2V2AudioEncoder(arch='tiny')
    x = torch.randn(2, 12, 64, requires_grad=True)
    with OpRecorder() as rec:
        enc.positions(x).pow(2).sum().backward()
    _assert_channels_last_convs(
        rec, enc.pos_convs.__len__(),
        ('native_layer_norm', 'native_layer_norm_backward', 'gelu',
         'gelu_backward'))


def test_alibi_slopes_of_8_and_16_heads():
    """fairseq ``get_alibi``: start 2^(-2^-(log2 n - 3)), ratio = start."""
    assert torch.allclose(
        alibi_slopes(8), 2.**-torch.arange(1, 9, dtype=torch.float32))
    assert torch.allclose(
        alibi_slopes(16), 2.**(-0.5 * torch.arange(1, 17).float()))


@pytest.mark.parametrize('arch,row', [('base', (768, 12, 12, 3072, 512)),
                                      ('tiny', (64, 4, 4, 256, 32))])
def test_arch_table_and_the_wav2vec2_conv_stack(arch, row):
    """(embed_dims, num_layers, heads, FFN, conv channels); both stacks are
    wav2vec 2.0's kernels and strides: a 400-sample receptive field, one
    frame per 320 samples (49 frames a second of 16 kHz audio)."""
    with torch.device('meta'):
        enc = D2V2AudioEncoder(arch=arch)
    block = enc.layers[0]
    assert (enc.embed_dims, len(enc.layers), block.attn.num_heads,
            block.ffn.layers[0][0].out_features, enc.spec[0][0]) == row
    assert [s[1:] for s in enc.spec] == [(10, 5)] + [(3, 2)] * 4 + [(2, 2)] * 2
    assert {s[0] for s in enc.spec} == {row[-1]}
    assert enc.receptive_field == 400
    assert enc.frame_lengths(16000) == 49
    assert enc.frame_lengths(400 + 320 * 7) == 8


def test_defaults_are_fairseqs_audio_base():
    """encoder / attention / prenet dropout 0.1, FFN dropout 0, LayerDrop
    0.05, eps 1e-5, positional convs 5 x kernel 19 in 16 groups, ALiBi with
    learned per-head scales 1, layer-norm extractor without conv bias."""
    with torch.device('meta'):
        enc = D2V2AudioEncoder(arch='tiny')
    block = enc.layers[0]
    assert block.attn.attn_drop == 0.1 and block.attn.proj_drop.p == 0.1
    assert block.post_ffn_drop.p == 0.1 and enc.drop_after_pos.p == 0.1
    assert enc.layerdrop == 0.05 and enc.ln_pre.eps == 1e-5
    assert (len(enc.pos_convs), enc.pos_kernel,
            enc.pos_convs[0].groups) == (5, 19, 16)
    assert enc.pos_pre_ln is None
    assert enc.alibi_scale.shape == (1, 4, 1, 1)
    assert enc.alibi_scale.requires_grad
    assert all(layer.norm_type == 'layer' and layer.conv.bias is None
               for layer in enc.feature_extractor)


def test_default_extractor_mode_has_one_group_norm():
    """wav2vec 2.0 base ('default'): GroupNorm after the first conv only."""
    enc = _encoder(extractor_mode='default')
    norms = [layer.norm_type for layer in enc.feature_extractor]
    assert norms == ['group'] + [None] * (len(SMALL) - 1)
    assert isinstance(enc.feature_extractor[0].norm, torch.nn.GroupNorm)


def test_bad_arguments_are_named():
    for spec in ([(8, 10)], [(8, 10, 0)], [(0, 10, 5)]):
        with pytest.raises(ValueError, match='feature_encoder_spec'):
            _encoder(feature_encoder_spec=spec)
    with pytest.raises(ValueError, match='divisible by num_heads'):
        _encoder(
            arch=dict(
                embed_dims=32,
                num_layers=1,
                num_heads=3,
                feedforward_channels=8))
    with pytest.raises(ValueError, match='conv_pos_groups'):
        _encoder(conv_pos_groups=5)
    for key in ('layerdrop', 'drop_rate', 'attn_drop_rate', 'context_dropout'):
        assert _encoder(**{key: 0.}) is not None  # 0 is allowed, 1 is not
        with pytest.raises(ValueError, match=key):
            _encoder(**{key: 1.})


def test_positional_kernel_init_and_state_dict_keys():
    """kernel max(3, width // depth) (even kernels cropped back to T); the
    blocks' Linear layers N(0, 0.02) with zero biases (fairseq
    init_bert_params); the ALiBi slopes are not saved, the scales are."""
    assert _encoder(conv_pos_width=8, conv_pos_depth=4).pos_kernel == 3
    even = _encoder(conv_pos_width=16, conv_pos_depth=4)
    assert even.pos_kernel == 4
    frames = torch.randn(2, 9, 32)
    assert even.positions(frames).shape == (2, 9, 32)
    torch.manual_seed(0)
    enc = _encoder(
        arch=dict(
            embed_dims=64, num_layers=2, num_heads=4,
            feedforward_channels=256))
    linears = [m for m in enc.layers.modules() if isinstance(m, nn.Linear)]
    assert len(linears) == 8
    weights = torch.cat([m.weight.flatten() for m in linears])
    assert abs(weights.std().item() - 0.02) < 0.001
    assert all(torch.all(m.bias == 0) for m in linears)
    keys = set(enc.state_dict())
    assert 'alibi_scale' in keys and 'alibi_slopes' not in keys
    with pytest.raises(ValueError, match='needs the keys'):
        _encoder(arch=dict(embed_dims=32, num_layers=1))


def test_init_weights_loads_the_init_cfg_checkpoint(tmp_path):
    assert_init_cfg_loads(_encoder, tmp_path)


def test_feature_grad_mult_scales_the_extractors_gradient_only():
    """0 < m < 1: the same features, the conv gradients times m (fairseq
    GradMultiply)."""
    torch.manual_seed(0)
    wave = torch.randn(2, 1600)
    grads, feats = [], []
    for m in (1., 0.25):
        torch.manual_seed(1)
        enc = _encoder(feature_grad_mult=m)
        x = enc.local_features(wave)
        (x**2).sum().backward()
        feats.append(x.detach())
        grads.append(enc.feature_extractor[0].conv.weight.grad)
    torch.testing.assert_close(feats[1], feats[0])
    torch.testing.assert_close(grads[1], 0.25 * grads[0])


def test_time_masked_frames_become_noise_of_mask_noise_std():
    """Fine-tuning time masks: the masked frames' features are replaced by
    N(0, mask_noise_std^2) noise, the others kept; channel masks zero
    channels (seen at the context LayerNorm with the positions off)."""
    torch.manual_seed(0)
    enc = _encoder(mask_noise_std=0.5).eval()
    enc.positions = lambda tokens, pad=None: torch.zeros_like(tokens)
    seen = []
    enc.ln_pre.register_forward_hook(lambda m, args, out: seen.append(args[0]))
    wave = torch.randn(2, 16000)
    tokens, (frames, ) = enc.embed(wave)
    time_mask = torch.zeros(2, frames, dtype=torch.bool)
    time_mask[:, 10:40] = True
    channel_mask = torch.zeros(2, 32, dtype=torch.bool)
    channel_mask[:, :8] = True
    with torch.no_grad():
        enc.forward_plain(wave, time_mask=time_mask, channel_mask=channel_mask)
    got = seen[-1]
    noise = got[:, 10:40, 8:]
    assert abs(noise.std().item() - 0.5) < 0.03
    assert abs(noise.mean().item()) < 0.03
    torch.testing.assert_close(got[:, :10, 8:], tokens[:, :10, 8:])
    assert torch.all(got[..., :8] == 0)


def test_teacher_plain_and_student_paths_share_the_context_input():
    """The teacher (forward_targets) and the plain path feed the context
    LayerNorm features + positions alike; ``mask=False`` is the plain
    path; one clone by default; a kernel of 6 (even, not a multiple of 4)
    is cropped back to T."""
    torch.manual_seed(0)
    enc = _encoder().eval()
    seen = []
    enc.ln_pre.register_forward_hook(lambda m, args, out: seen.append(args[0]))
    wave = torch.randn(2, 3200)
    with torch.no_grad():
        (plain, ) = enc(wave)
        enc.forward_targets(wave, 2)
        assert torch.equal(enc(wave, mask=False)[0], plain)
        tokens, (frames, ) = enc.embed(wave)
        mask = torch.zeros(2, frames, dtype=torch.bool)
        mask[:, ::2] = True
        latent, _, _ = enc(wave, mask)  # num_clones defaults to 1
    torch.testing.assert_close(seen[1], seen[0])
    assert latent.shape == (2, frames // 2, 32)
    six = _encoder(conv_pos_width=24, conv_pos_depth=4)
    assert six.pos_kernel == 6
    assert six.positions(torch.randn(1, 9, 32)).shape == (1, 9, 32)


def test_more_defaults_and_edges():
    """ALiBi scales start at 1, FFN dropout 0, time-mask noise std 0.01,
    the default extractor's GroupNorm is affine (fairseq Fp32GroupNorm),
    a kernel-1 stride-1 conv layer is a valid spec, and a clip too short
    for one frame has 0 frames (not 1)."""
    enc = D2V2AudioEncoder(arch='tiny')
    assert torch.all(enc.alibi_scale == 1.)
    assert enc.layers[0].ffn.layers[0][2].p == 0.
    assert enc.mask_noise_std == 0.01
    assert _encoder(extractor_mode='default').feature_extractor[0].norm.affine
    one = _encoder(feature_encoder_spec=SMALL + [(8, 1, 1)])
    assert one.receptive_field == 400
    assert enc.frame_lengths(torch.tensor([100, 400])).tolist() == [0, 1]
