# Copyright (c) mmssl contributors. All rights reserved.
"""CTC fine-tuning of the speech encoder: the loss against a brute-force
path sum, greedy decoding through the recogniser, frozen parts, masks and
bad input (mmssl.CTCSpeechRecognizer, ctc_loss, NumUpdatesHook)."""
import itertools
import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from mmpretrain.structures import DataSample

from mmssl.datasets.char_vocab import CharCTCVocab
from mmssl.engine.hooks import NumUpdatesHook
from mmssl.models.classifiers.ctc_recognizer import ctc_loss
from mmssl.registry import MODELS

SMALL = [(8, 10, 5)] + [(8, 3, 2)] * 4 + [(8, 2, 2)] * 2


def _collapse(path, blank=0):
    out, prev = [], None
    for s in path:
        if s != prev and s != blank:
            out.append(s)
        prev = s
    return out


def _brute_force_nll(log_probs, target):
    """-log of the summed probability of every path collapsing to
    ``target`` (log_probs (T, V))."""
    T, V = log_probs.shape
    total = 0.
    for path in itertools.product(range(V), repeat=T):
        if _collapse(path) == list(target):
            total += math.exp(
                sum(log_probs[t, s].item() for t, s in enumerate(path)))
    return -math.log(total)


def test_ctc_loss_equals_the_brute_force_path_sum():
    torch.manual_seed(0)
    log_probs = torch.randn(3, 5, 3).log_softmax(-1)  # B 3, T 5, V 3
    targets = [torch.tensor([1, 2]), torch.tensor([1, 1]), torch.tensor([2])]
    lengths = torch.tensor([5, 5, 4])
    nll = [
        _brute_force_nll(log_probs[b, :lengths[b]], targets[b])
        for b in range(3)
    ]
    got = ctc_loss(log_probs, lengths, targets, average='sentence')
    assert got.item() == pytest.approx(sum(nll) / 3, rel=1e-5)
    tok = ctc_loss(log_probs, lengths, targets, average='token')
    assert tok.item() == pytest.approx(sum(nll) / 5, rel=1e-5)
    # an infeasible alignment ([1, 1] needs 3 frames) counts 0
    short = ctc_loss(log_probs[1:2, :2], torch.tensor([2]), targets[1:2])
    assert short.item() == 0
    # only empty targets: the token average divides by 1, not by 0 (the
    # path of all blanks)
    empty = [torch.zeros(0, dtype=torch.long)] * 2
    blanks = ctc_loss(log_probs[:2], lengths[:2], empty, average='token')
    assert blanks.item() == pytest.approx(
        -float(log_probs[:2, :, 0].sum()), rel=1e-5)


def _backbone():
    return dict(
        type='mmssl.D2V2AudioEncoder',
        arch=dict(
            embed_dims=32, num_layers=2, num_heads=4, feedforward_channels=64),
        feature_encoder_spec=SMALL,
        conv_pos_groups=4,
        feature_grad_mult=0.)


def _recognizer(**kw):
    backbone = _backbone()
    backbone.update(kw.pop('backbone', {}))
    # short test clips (6-9 frames): short time spans
    cfg = dict(
        type='mmssl.CTCSpeechRecognizer',
        backbone=backbone,
        mask_length=3,
        mask_channel_length=4)
    cfg.update(kw)
    return MODELS.build(cfg)


def _batch(lengths, vocab=CharCTCVocab()):
    torch.manual_seed(1)
    inputs = torch.zeros(len(lengths), max(lengths))
    samples = []
    for i, n in enumerate(lengths):
        inputs[i, :n] = torch.randn(n)
        text = ['ONE TWO', 'CAT', "IT'S A"][i % 3]
        s = DataSample(
            num_samples=n,
            transcript=text,
            target_ids=torch.tensor(vocab.encode(text)))
        s.set_metainfo(dict(audio_path=f'clip{i}.wav'))
        samples.append(s)
    return inputs, samples


def test_greedy_decoding_through_the_recognizer(monkeypatch):
    rec = _recognizer()
    rec.eval()
    v = rec.vocab
    C, A, T = (v.encode(c)[0] for c in 'CAT')
    bar = v.word_boundary_id
    paths = [[C, C, 0, A, bar, bar, A, 0, T, T],
             [A, 0, A, T, C, C, C, C, 0, 0]]
    logits = torch.full((2, 10, len(v)), -5.)
    for b, path in enumerate(paths):
        for t, s in enumerate(path):
            logits[b, t, s] = 5.
    lengths = torch.tensor([10, 4])  # the second clip ends after 4 frames
    monkeypatch.setattr(rec, 'logits', lambda inputs, samples:
                        (logits, lengths))
    out = rec.predict(torch.zeros(2, 4000), [DataSample(), DataSample()])
    assert [s.pred_text for s in out] == ['CA AT', 'AAT']
    assert out[0].pred_ids == [C, A, bar, A, T]


def test_predict_and_loss_on_a_padded_batch():
    rec = _recognizer(mask_prob=0.3, mask_length=2)
    inputs, samples = _batch([3200, 2000, 1500])
    rec.train()
    losses = rec.loss(inputs, samples)
    assert set(losses) == {'loss'} and torch.isfinite(losses['loss'])
    rec.eval()
    with torch.no_grad():
        out = rec.predict(inputs, samples)
        scores = rec(inputs, samples, mode='tensor')
    assert all(isinstance(s.pred_text, str) for s in out)
    assert scores.shape == (3, rec.backbone.frame_lengths(3200), 29)
    assert out[0].transcript == 'ONE TWO'


def test_feature_extractor_gets_no_gradient():
    rec = _recognizer()
    rec.train()
    inputs, samples = _batch([3200, 2400])
    rec.loss(inputs, samples)['loss'].backward()
    enc = rec.backbone
    assert all(p.grad is None for p in enc.feature_extractor.parameters())
    assert enc.feature_proj.weight.grad is not None
    assert enc.layers[0].attn.qkv.weight.grad is not None
    assert rec.head.weight.grad is not None


def test_encoder_frozen_for_the_first_updates():
    rec = _recognizer(freeze_finetune_updates=3)
    rec.train()
    inputs, samples = _batch([3200, 2400])
    with pytest.raises(RuntimeError, match='NumUpdatesHook'):
        rec.loss(inputs, samples)
    hook = NumUpdatesHook()
    runner = SimpleNamespace(
        model=rec,
        iter=5,
        optim_wrapper=SimpleNamespace(_accumulative_counts=2))
    hook.before_train(runner)
    hook.before_train_iter(runner, 0)
    assert rec.num_updates == 2 and rec.encoder_frozen  # 5 iters // 2
    rec.loss(inputs, samples)['loss'].backward()
    assert all(p.grad is None for p in rec.backbone.parameters())
    assert rec.head.weight.grad is not None
    runner.iter = 6
    hook.before_train_iter(runner, 1)
    assert rec.num_updates == 3 and not rec.encoder_frozen
    rec.zero_grad()
    rec.loss(inputs, samples)['loss'].backward()
    assert rec.backbone.layers[1].ffn.layers[1].weight.grad is not None
    with pytest.raises(TypeError, match='set_num_updates'):
        hook.before_train(SimpleNamespace(model=torch.nn.Linear(1, 1)))


def test_training_masks_follow_the_recipe():
    rec = _recognizer(
        mask_prob=0.65,
        mask_length=10,
        mask_channel_prob=0.5,
        mask_channel_length=4)
    rec.train()
    lengths = torch.tensor([80, 60])
    time_mask, channel_mask = rec._masks(lengths, 80)
    assert time_mask.shape == (2, 80) and channel_mask.shape == (2, 32)
    assert not time_mask[1, 60:].any()
    assert time_mask.sum(1)[0] == time_mask.sum(1)[1] > 0
    rec.eval()
    assert rec._masks(lengths, 80) == (None, None)


def test_short_clip_is_refused_naming_the_file():
    rec = _recognizer()
    inputs, samples = _batch([3200, 300])
    with pytest.raises(ValueError) as err:
        rec.loss(inputs, samples)
    assert "'clip1.wav'" in str(err.value) and '300 samples' in str(err.value)


def test_missing_targets_are_refused():
    rec = _recognizer()
    inputs, samples = _batch([3200])
    del samples[0].target_ids
    with pytest.raises(ValueError, match='EncodeTranscript'):
        rec.loss(inputs, samples)


def test_recipe_defaults_and_probability_bounds():
    """fairseq ``base_10h.yaml``: time spans of 10 frames started with
    p = 0.65, channel spans of 64 with p = 0.5; a probability of 1 would
    mask everything and is refused, 0 turns the masking off."""
    rec = MODELS.build(
        dict(type='mmssl.CTCSpeechRecognizer', backbone=_backbone()))
    assert (rec.mask_prob, rec.mask_length, rec.mask_channel_prob,
            rec.mask_channel_length) == (0.65, 10, 0.5, 64)
    for key in ('mask_prob', 'mask_channel_prob', 'final_dropout'):
        with pytest.raises(ValueError, match=key):
            _recognizer(**{key: 1.0})
        _recognizer(**{key: 0.})  # allowed
    rec = _recognizer(mask_prob=0., mask_channel_prob=0.)
    rec.train()
    assert rec._masks(torch.tensor([80]), 80) == (None, None)


def test_lengths_without_sample_counts_are_the_padded_length():
    """Without data samples (or without ``num_samples``) every clip counts
    as the whole padded batch length."""
    rec = _recognizer()
    inputs, samples = _batch([3200, 2000])
    full = rec.backbone.frame_lengths(torch.tensor([3200, 3200]))
    assert torch.equal(rec.frame_lengths(inputs, None), full)
    del samples[1].num_samples
    assert torch.equal(rec.frame_lengths(inputs, samples), full)
    _, samples = _batch([3200, 2000])
    assert torch.equal(
        rec.frame_lengths(inputs, samples),
        rec.backbone.frame_lengths(torch.tensor([3200, 2000])))


def test_minimum_masks_time_one_channel_none():
    """data2vec 2.0 fine-tuning: at least one time span per clip
    (``min_masks=1``) however small ``mask_prob``, no forced channel
    span (``min_masks=0``)."""
    rec = _recognizer(
        mask_prob=1e-6,
        mask_length=3,
        mask_channel_prob=1e-6,
        mask_channel_length=4)
    rec.train()
    for seed in range(5):
        torch.manual_seed(seed)
        time_mask, channel_mask = rec._masks(torch.tensor([40, 30]), 40)
        assert (time_mask.sum(1) >= 3).all()
        assert not channel_mask.any()


def test_loss_is_ctc_of_the_log_softmax():
    rec = _recognizer()
    rec.eval()  # no masks, no dropout: the loss is deterministic
    inputs, samples = _batch([3200, 2000, 1500])
    logits, lengths = rec.logits(inputs, samples)
    hand = ctc_loss(
        F.log_softmax(logits, dim=-1), lengths,
        [s.target_ids for s in samples])
    torch.testing.assert_close(rec.loss(inputs, samples)['loss'], hand)
