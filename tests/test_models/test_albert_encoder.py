# Copyright (c) mmssl contributors. All rights reserved.
"""AlbertEncoder: sizes, parameter counts, real sharing, groups, masking."""
import pytest
import torch

from mmssl.models.backbones import AlbertEncoder
from mmssl.models.backbones.albert import albert_num_params, count_parameters

TINY = dict(
    arch='base',
    vocab_size=100,
    embedding_size=16,
    hidden_size=32,
    num_layers=4,
    num_heads=4,
    ffn_dim=64,
    max_position=64)

#: spec 3: one shared base layer
BASE_LAYER = 7_087_872


def _meta(**kwargs):
    with torch.device('meta'):
        return AlbertEncoder(**kwargs)


def test_base_count_is_the_spec_number():
    enc = _meta(arch='base')
    assert count_parameters(enc) == 11_683_584
    assert albert_num_params() == 11_683_584
    assert enc.projection is not None and len(enc.attn_blocks) == 1


def test_doubling_layers_with_all_sharing_keeps_the_count():
    assert count_parameters(_meta(arch='base', num_layers=24)) == 11_683_584


def test_share_none_adds_one_layer_per_extra_layer():
    enc = _meta(arch='base', share='none')
    assert count_parameters(enc) == 11_683_584 + 11 * BASE_LAYER
    assert len(enc.attn_blocks) == len(enc.ffn_blocks) == 12


@pytest.mark.parametrize(
    'arch,paper,rel',
    [
        ('base', 12e6, 0.03),
        ('large', 18e6, 0.03),
        ('xlarge', 60e6, 0.03),
        # the paper's 235M is not reachable from its own Table 1 sizes: L12,
        # H4096, FFN 16384, E128 gives 222.6M (so do the public checkpoints)
        ('xxlarge', 235e6, 0.06),
        ('bert-base', 108e6, 0.015),
        ('bert-large', 334e6, 0.005),
    ])
def test_paper_sizes(arch, paper, rel):
    enc = _meta(arch=arch)
    n = count_parameters(enc)
    shared = enc.share == 'all'
    closed = albert_num_params(
        embedding_size=enc.embedding_size,
        hidden_size=enc.hidden_size,
        ffn_dim=enc.ffn_dim,
        num_attn=1 if shared else enc.num_layers,
        num_ffn=1 if shared else enc.num_layers)
    assert n == closed
    assert abs(n - paper) / paper < rel, (arch, n)


def test_share_attention_and_ffn_counts():
    attn = 4 * (768 * 768 + 768) + 2 * 768
    ffn = BASE_LAYER - attn
    assert count_parameters(_meta(
        arch='base', share='attention')) == (11_683_584 + 11 * ffn)
    assert count_parameters(_meta(arch='base',
                                  share='ffn')) == (11_683_584 + 11 * attn)


def test_sharing_is_the_same_tensor_and_grads_accumulate():
    torch.manual_seed(0)
    enc = AlbertEncoder(**TINY)
    enc.init_weights()
    q = [
        attn.query.weight for layer in range(4)
        for attn, _ in enc.layer_modules(layer)
    ]
    assert all(w is q[0] for w in q)
    fc1 = [
        ffn.fc1.weight for layer in range(4)
        for _, ffn in enc.layer_modules(layer)
    ]
    assert all(w is fc1[0] for w in fc1)
    # the same network with one copy of the shared weights per layer
    untied = AlbertEncoder(**dict(TINY, share='none'))
    state = {
        k: v
        for k, v in enc.state_dict().items()
        if not k.startswith(('attn_blocks', 'ffn_blocks'))
    }
    for k, v in enc.state_dict().items():
        if k.startswith(('attn_blocks', 'ffn_blocks')):
            for layer in range(4):
                state[k.replace('.0.', f'.{layer}.', 1)] = v.clone()
    untied.load_state_dict(state)
    ids = torch.randint(0, 100, (2, 8))
    a, _ = enc(ids)
    b, _ = untied(ids)
    assert torch.allclose(a, b, atol=1e-6)
    a.square().sum().backward()
    b.square().sum().backward()
    for name, p in enc.attn_blocks[0].named_parameters():
        per_layer = sum(
            dict(untied.attn_blocks[i].named_parameters())[name].grad
            for i in range(4))
        assert torch.allclose(p.grad, per_layer, atol=1e-5), name
    grad = enc.ffn_blocks[0].fc2.weight.grad
    assert torch.allclose(
        grad,
        sum(untied.ffn_blocks[i].fc2.weight.grad for i in range(4)),
        atol=1e-5)
    # and it is more than any single layer's share
    assert not torch.allclose(grad, untied.ffn_blocks[3].fc2.weight.grad)


def test_optimizer_step_changes_every_layer_identically():
    torch.manual_seed(0)
    enc = AlbertEncoder(**TINY)
    enc.init_weights()
    before = [[p.detach().clone() for p in attn.parameters()]
              for layer in range(4) for attn, _ in enc.layer_modules(layer)]
    opt = torch.optim.SGD(enc.parameters(), lr=0.1)
    seq, pooled = enc(torch.randint(0, 100, (2, 8)))
    (seq.square().mean() + pooled.sum()).backward()
    opt.step()
    after = [[p.detach().clone() for p in attn.parameters()]
             for layer in range(4) for attn, _ in enc.layer_modules(layer)]
    deltas = [[a - b for a, b in zip(x, y)] for x, y in zip(after, before)]
    assert any(d.abs().sum() > 0 for d in deltas[0])
    for d in deltas[1:]:
        assert all(torch.equal(a, b) for a, b in zip(d, deltas[0]))


def test_unshared_layers_are_distinct():
    enc = AlbertEncoder(**dict(TINY, share='none'))
    ws = [enc.layer_modules(i)[0][0].query.weight for i in range(4)]
    assert len({id(w) for w in ws}) == 4
    enc = AlbertEncoder(**dict(TINY, share='attention'))
    assert len({id(enc.layer_modules(i)[0][0]) for i in range(4)}) == 1
    assert len({id(enc.layer_modules(i)[0][1]) for i in range(4)}) == 4
    enc = AlbertEncoder(**dict(TINY, share='ffn'))
    assert len({id(enc.layer_modules(i)[0][0]) for i in range(4)}) == 4
    assert len({id(enc.layer_modules(i)[0][1]) for i in range(4)}) == 1


def test_no_projection_when_embedding_equals_hidden():
    enc = AlbertEncoder(**dict(TINY, embedding_size=32))
    assert enc.projection is None
    assert not any('projection' in k for k in enc.state_dict())
    assert AlbertEncoder(
        **dict(TINY, embedding_size=32),
        projection=True).projection is not None
    seq, pooled = enc(torch.randint(0, 100, (2, 5)))
    assert seq.shape == (2, 5, 32) and pooled.shape == (2, 32)


@pytest.mark.parametrize('layers,groups', [(4, 2), (12, 5), (6, 4), (5, 3)])
def test_group_assignment(layers, groups):
    enc = AlbertEncoder(**dict(
        TINY, num_layers=layers, num_hidden_groups=groups, inner_group_num=2))
    assert len(enc.attn_blocks) == groups * 2
    for layer in range(layers):
        g = (layer * groups) // layers
        assert enc.group_of(layer) == g
        assert enc.block_indices(layer) == [(2 * g, 2 * g),
                                            (2 * g + 1, 2 * g + 1)]
    # every group is used, in order
    assert sorted({enc.group_of(i)
                   for i in range(layers)}) == list(range(groups))


def test_padding_does_not_change_real_tokens():
    torch.manual_seed(0)
    enc = AlbertEncoder(**TINY).eval()
    enc.init_weights()
    ids = torch.randint(5, 100, (1, 6))
    padded = torch.cat([ids, torch.zeros(1, 3, dtype=torch.long)], 1)
    mask = torch.tensor([[1] * 6 + [0] * 3])
    a, pa = enc(ids)
    b, pb = enc(padded, attention_mask=mask)
    assert torch.allclose(a, b[:, :6], atol=1e-5)
    assert torch.allclose(pa, pb, atol=1e-5)


def test_word_embeddings_exposed_and_init():
    enc = AlbertEncoder(**TINY)
    enc.init_weights()
    assert enc.word_embeddings is enc.embeddings.word_embeddings
    w = enc.word_embeddings.weight
    assert w.abs().max() <= 0.04 + 1e-6 and 0.01 < w.std() < 0.03
    assert torch.all(enc.pooler.bias == 0)


def test_bad_values_are_named():
    with pytest.raises(ValueError, match='share'):
        AlbertEncoder(**dict(TINY, share='some'))
    with pytest.raises(ValueError, match='num_heads'):
        AlbertEncoder(**dict(TINY, num_heads=5))
    with pytest.raises(ValueError, match='arch'):
        AlbertEncoder(**dict(TINY, arch='huge'))
    with pytest.raises(ValueError, match='num_hidden_groups'):
        AlbertEncoder(**dict(TINY, num_hidden_groups=5))
    enc = AlbertEncoder(**TINY)
    with pytest.raises(ValueError, match='vocab_size'):
        enc(torch.tensor([[1, 100]]))
    with pytest.raises(ValueError, match='max_position'):
        enc(torch.zeros(1, 65, dtype=torch.long))
