# Copyright (c) mmssl contributors. All rights reserved.
"""AlbertPretrainer on synthetic batches in the text data contract."""
import pytest
import torch
from mmengine.optim import OptimWrapper
from mmengine.structures import BaseDataElement

from mmssl.registry import MODELS

V, P = 100, 5
BACKBONE = dict(
    type='mmssl.AlbertEncoder',
    vocab_size=V,
    embedding_size=16,
    hidden_size=32,
    num_layers=4,
    num_heads=4,
    ffn_dim=64,
    max_position=64)


def _items(batch=4, seed=0):
    """Packed items as mmssl.PackTextInputs gives them (varying T)."""
    g = torch.Generator().manual_seed(seed)
    items = []
    for i in range(batch):
        t = 10 + 2 * i
        ids = torch.randint(5, V, (t, ), generator=g)
        ids[0], ids[t // 2], ids[-1] = 2, 3, 3  # [CLS] A [SEP] B [SEP]
        types = torch.zeros(t, dtype=torch.long)
        types[t // 2 + 1:] = 1
        n = 3 + i % 2  # real predictions; the rest is padding
        pos = torch.zeros(P, dtype=torch.long)
        pos[:n] = torch.randperm(t - 2, generator=g)[:n] + 1
        labels = torch.zeros(P, dtype=torch.long)
        labels[:n] = ids[pos[:n]]
        ids = ids.clone()
        ids[pos[:n]] = 4  # [MASK]
        weights = torch.zeros(P)
        weights[:n] = 1
        sample = BaseDataElement(metainfo=dict(sample_idx=i))
        sample.set_data(
            dict(
                mlm_positions=pos,
                mlm_labels=labels,
                mlm_weights=weights,
                sop_label=torch.tensor(i % 2)))
        items.append((dict(input_ids=ids, token_type_ids=types), sample))
    return dict(
        inputs=dict(
            input_ids=[x['input_ids'] for x, _ in items],
            token_type_ids=[x['token_type_ids'] for x, _ in items]),
        data_samples=[s for _, s in items])


def _model(**kwargs):
    torch.manual_seed(0)
    cfg = dict(type='mmssl.AlbertPretrainer', backbone=BACKBONE)
    cfg.update(kwargs)
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def test_loss_keys_and_tied_decoder():
    model = _model()
    assert model.mlm_head.decoder_weight is \
        model.backbone.word_embeddings.weight
    data = model.data_preprocessor(_items(), True)
    assert data['inputs']['attention_mask'].shape == (4, 16)
    losses = model(**data, mode='loss')
    assert set(losses) == {'loss_mlm', 'loss_sop', 'mlm_acc', 'sop_acc'}
    assert losses['loss_mlm'].requires_grad
    assert losses['loss_sop'].requires_grad
    assert not losses['mlm_acc'].requires_grad
    assert not losses['sop_acc'].requires_grad
    # initial MLM loss near log V
    assert abs(losses['loss_mlm'].item() -
               torch.log(torch.tensor(float(V))).item()) < 0.5
    # one copy of the word embedding in the checkpoint
    keys = list(model.state_dict())
    assert sum('word_embeddings' in k for k in keys) == 1


def test_adam_steps_lower_both_losses():
    model = _model()
    optim = OptimWrapper(torch.optim.Adam(model.parameters(), lr=3e-3))
    batch = _items()
    first = last = None
    for _ in range(25):
        log = model.train_step(batch, optim)
        first = first or log
        last = log
    assert last['loss_mlm'] < 0.8 * first['loss_mlm']
    assert last['loss_sop'] < first['loss_sop']


def test_mlm_only_without_sop_head():
    model = _model(sop_head=None)
    assert model.sop_head is None
    batch = _items()
    for sample in batch['data_samples']:
        del sample.sop_label  # no SOP labels needed
    losses = model(**model.data_preprocessor(batch, True), mode='loss')
    assert set(losses) == {'loss_mlm', 'mlm_acc'}
    out = model.val_step(batch)
    assert all('sop_pred' not in s for s in out)


def test_predict_fields():
    model = _model().eval()
    out = model.val_step(_items())
    assert len(out) == 4
    for i, sample in enumerate(out):
        assert isinstance(sample.mlm_correct, int)
        assert sample.mlm_total == 3 + i % 2
        assert 0 <= sample.mlm_correct <= sample.mlm_total
        assert sample.sop_pred.dtype == torch.long
        assert sample.sop_pred.shape == ()
        assert sample.metainfo['sample_idx'] == i
    tensors = model(**model.data_preprocessor(_items()), mode='tensor')
    assert tensors['mlm_logits'].shape == (4, P, V)
    assert tensors['sop_logits'].shape == (4, 2)
    assert tensors['sequence_output'].shape == (4, 16, 32)


def test_predict_counts_match_the_logits():
    model = _model().eval()
    data = model.data_preprocessor(_items())
    with torch.no_grad():
        logits = model(**data, mode='tensor')['mlm_logits']
        out = model(**data, mode='predict')
    for i, sample in enumerate(out):
        w = sample.mlm_weights
        hit = (logits[i].argmax(-1) == sample.mlm_labels).float() * w
        assert sample.mlm_correct == int(hit.sum())
    # a SOP classifier that predicts both orders on this batch: move the
    # bias of 'swapped' to the median margin
    with torch.no_grad():
        logits = model(**data, mode='tensor')['sop_logits']
        margin = (logits[:, 1] - logits[:, 0]).sort().values
        model.sop_head.fc.bias[1] -= margin[1:3].mean()
        sop = model(**data, mode='tensor')['sop_logits'].argmax(-1)
        out = model(**data, mode='predict')
    assert sop.unique().numel() == 2
    assert [int(s.sop_pred) for s in out] == sop.tolist()


def test_bad_batches_are_named():
    model = _model()
    batch = _items()
    del batch['data_samples'][2].mlm_weights
    with pytest.raises(
            ValueError, match=r'sample_idx 2\) has no '
            "'mlm_weights'"):
        model(**model.data_preprocessor(batch, True), mode='loss')
    batch = _items()
    batch['data_samples'][0].mlm_positions[0] = 40
    with pytest.raises(ValueError, match='mlm_positions'):
        model(**model.data_preprocessor(batch, True), mode='loss')
    # the batch length itself is outside [0, T)
    batch = _items()
    batch['data_samples'][0].mlm_positions[0] = 16
    with pytest.raises(ValueError, match=r'mlm_positions must lie in \[0, 16'):
        model(**model.data_preprocessor(batch, True), mode='loss')
    with pytest.raises(ValueError, match='vocab_size'):
        _model(mlm_head=dict(type='mmssl.AlbertMLMHead', vocab_size=50))
    # sizes the decoder tie cannot see are checked against the backbone
    with pytest.raises(ValueError, match=r'mlm_head.in_channels=16 does not'):
        _model(mlm_head=dict(type='mmssl.AlbertMLMHead', in_channels=16))
    with pytest.raises(ValueError, match=r'sop_head.in_channels=16 does not'):
        _model(sop_head=dict(type='mmssl.SentenceOrderHead', in_channels=16))
    # the backbone's own sizes may be repeated
    _model(mlm_head=dict(type='mmssl.AlbertMLMHead', in_channels=32))
    with pytest.raises(ValueError, match='with_pooler'):
        _model(backbone=dict(BACKBONE, with_pooler=False))
    with pytest.raises(ValueError, match='input_ids'):
        model(inputs=torch.zeros(2, 3), data_samples=None, mode='tensor')


def test_compiled_loss_equals_eager_in_one_graph():
    """The pretraining forward compiles into one graph (the token-id and
    position checks are in-graph asserts, no host reads), gives the eager
    losses, is not compiled again for the next batch, and still refuses a
    position outside the sequence."""
    model = _model()
    model.train()
    data = model.data_preprocessor(_items(), True)
    torch.manual_seed(1)
    eager = model(**data, mode='loss')
    torch._dynamo.reset()
    step = torch.compile(model.forward, backend='eager', fullgraph=True)
    torch.manual_seed(1)
    compiled = step(**data, mode='loss')
    for key, value in eager.items():
        torch.testing.assert_close(compiled[key], value)
    with torch._dynamo.config.patch(error_on_recompile=True):
        step(**model.data_preprocessor(_items(seed=1), True), mode='loss')
        batch = _items(seed=2)
        batch['data_samples'][0].mlm_positions[0] = 40
        with pytest.raises(RuntimeError, match='mlm_positions'):
            step(**model.data_preprocessor(batch, True), mode='loss')
    torch._dynamo.reset()


def test_without_the_text_preprocessor():
    model = _model(data_preprocessor=None)
    data = _items()
    from mmssl.models.data_preprocessors.text import pad_sequences
    inputs = dict(
        input_ids=pad_sequences(data['inputs']['input_ids']),
        token_type_ids=pad_sequences(data['inputs']['token_type_ids']))
    losses = model(inputs, data['data_samples'], mode='loss')
    assert set(losses) == {'loss_mlm', 'loss_sop', 'mlm_acc', 'sop_acc'}
