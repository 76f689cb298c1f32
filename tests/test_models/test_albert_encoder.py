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


def test_count_without_pooler():
    enc = _meta(arch='base', with_pooler=False)
    assert enc.pooler is None
    assert count_parameters(enc) == albert_num_params(
        with_pooler=False) == 11_683_584 - (768 * 768 + 768)


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


@pytest.mark.parametrize(
    'arch,layers,hidden,heads,ffn,embed,share',
    [
        # paper Table 1 (L, H, E, sharing); heads and FFN of the released
        # configs (the public albert_config.json of each size)
        ('base', 12, 768, 12, 3072, 128, 'all'),
        ('large', 24, 1024, 16, 4096, 128, 'all'),
        ('xlarge', 24, 2048, 16, 8192, 128, 'all'),
        ('xxlarge', 12, 4096, 64, 16384, 128, 'all'),
        ('bert-base', 12, 768, 12, 3072, 768, 'none'),
        ('bert-large', 24, 1024, 16, 4096, 1024, 'none'),
    ])
def test_arch_table(arch, layers, hidden, heads, ffn, embed, share):
    """Every preset is the paper's row; the number of layers and heads do
    not show in the parameter counts above."""
    enc = _meta(arch=arch)
    assert (enc.num_layers, enc.hidden_size, enc.num_heads, enc.ffn_dim,
            enc.embedding_size, enc.share) == (layers, hidden, heads, ffn,
                                               embed, share)


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


def test_projection_argument():
    """None: only when E != H; True: always; False: only with E == H."""
    assert AlbertEncoder(**TINY).projection is not None  # E 16, H 32
    assert AlbertEncoder(**TINY, projection=True).projection is not None
    enc = AlbertEncoder(**dict(TINY, embedding_size=32), projection=False)
    assert enc.projection is None
    with pytest.raises(ValueError, match='projection=False'):
        AlbertEncoder(**TINY, projection=False)


def test_arch_dict_and_bad_arch_type():
    enc = AlbertEncoder(
        arch=dict(
            num_layers=2,
            hidden_size=32,
            num_heads=4,
            ffn_dim=64,
            embedding_size=16,
            share='all'),
        vocab_size=100)
    assert (enc.num_layers, enc.hidden_size, enc.embedding_size) == (2, 32, 16)
    with pytest.raises(ValueError, match='str or a dict'):
        AlbertEncoder(arch=['base'])
    with pytest.raises(ValueError, match='unknown arch keys'):
        AlbertEncoder(arch=dict(layers=2))
    with pytest.raises(ValueError, match='lacks'):
        AlbertEncoder(arch=dict(num_layers=2))


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
    assert len(enc.attn_blocks) == len(enc.ffn_blocks) == groups * 2
    for layer in range(layers):
        g = (layer * groups) // layers
        assert enc.group_of(layer) == g
        assert enc.block_indices(layer) == [(2 * g, 2 * g),
                                            (2 * g + 1, 2 * g + 1)]
    # every group is used, in order
    assert sorted({enc.group_of(i)
                   for i in range(layers)}) == list(range(groups))
    seq, _ = enc(torch.randint(0, 100, (1, 3)))
    assert seq.shape == (1, 3, 32)


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
    torch.manual_seed(0)
    enc = AlbertEncoder(**dict(TINY, vocab_size=1000))
    enc.init_weights()
    assert enc.word_embeddings is enc.embeddings.word_embeddings
    w = enc.word_embeddings.weight
    # truncated normal, std 0.02 cut at 2 std: std 0.02 * 0.8796 = 0.01759
    assert w.abs().max() <= 0.04 + 1e-6
    assert abs(w.std().item() - 0.01759) < 0.0005
    assert torch.all(enc.pooler.bias == 0)
    norms = [m for m in enc.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert len(norms) == 3  # embeddings, attention, FFN
    for m in norms:
        assert torch.all(m.weight == 1) and torch.all(m.bias == 0)
        assert m.eps == 1e-12  # the reference's


def test_bad_values_are_named():
    with pytest.raises(ValueError, match='share'):
        AlbertEncoder(**dict(TINY, share='some'))
    with pytest.raises(ValueError, match='num_heads'):
        AlbertEncoder(**dict(TINY, num_heads=5))
    with pytest.raises(ValueError, match='arch'):
        AlbertEncoder(**dict(TINY, arch='huge'))
    with pytest.raises(ValueError, match='num_hidden_groups'):
        AlbertEncoder(**dict(TINY, num_hidden_groups=5))
    for key in ('dropout', 'attn_dropout'):
        with pytest.raises(ValueError, match=key):
            AlbertEncoder(**TINY, **{key: 1.})
    enc = AlbertEncoder(**TINY)
    with pytest.raises(ValueError, match='vocab_size'):
        enc(torch.tensor([[1, 100]]))
    with pytest.raises(ValueError, match='max_position'):
        enc(torch.zeros(1, 65, dtype=torch.long))
    assert enc(torch.zeros(1, 64, dtype=torch.long))[0].shape == (1, 64, 32)
