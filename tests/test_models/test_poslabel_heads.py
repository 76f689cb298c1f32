# Copyright (c) mmssl contributors. All rights reserved.
"""Positional labels (spec poslabel.md sections 3 and 7): the labels, the
APL / RPL heads and their loss, against hand computations."""
import math

import pytest
import torch
from mmpretrain.models.utils.attention import WindowMSA

from mmssl.models.heads import AbsPosLabelHead, RelPosLabelHead
from mmssl.models.heads.poslabel_head import pos_label_loss
from mmssl.models.utils import (abs_pos_labels, full_grid_ids, kept_ids,
                                random_masking, rel_pos_label_matrix,
                                window_pairs)

# r(i, j) on a 3x3 grid by hand: (h_i - h_j + 2) * 5 + (w_i - w_j + 2)
HAND_REL_3X3 = {
    0: [12, 11, 10, 7, 6, 5, 2, 1, 0],  # token (0, 0)
    4: [18, 17, 16, 13, 12, 11, 8, 7, 6],  # token (1, 1)
    8: [24, 23, 22, 19, 18, 17, 14, 13, 12],  # token (2, 2)
}


@pytest.mark.parametrize('batch', [1, 3, 7])
def test_abs_labels_are_the_grid_index_for_any_batch(batch):
    """Regression of the reference's labels hard-coded for batch 256."""
    labels = abs_pos_labels(full_grid_ids(batch, 9))
    assert labels.tolist() == list(range(9)) * batch


def test_abs_labels_follow_the_mae_gather_on_a_3x3_grid():
    """Token k of a 3x3 grid holds the value k; after MAE's shuffle and
    drop, each visible token's label is still the value it holds."""
    B, L = 5, 9
    x = torch.arange(L, dtype=torch.float).view(1, L, 1).repeat(B, 1, 4)
    torch.manual_seed(0)
    x_visible, mask, ids_restore, ids_keep = random_masking(x, 2 / 3)
    V = x_visible.shape[1]
    assert V == 3
    ids = kept_ids(ids_restore, V)
    assert torch.equal(ids, ids_keep)
    assert torch.equal(abs_pos_labels(ids), x_visible[..., 0].long().flatten())
    # the labels are exactly the kept (mask == 0) cells
    for b in range(B):
        assert sorted(
            ids[b].tolist()) == torch.nonzero(mask[b] == 0).flatten().tolist()
    # and a hand-written shuffle: patches 4, 0, 8 kept in that order
    ids_shuffle = torch.tensor([[4, 0, 8, 1, 2, 3, 5, 6, 7]])
    assert kept_ids(torch.argsort(ids_shuffle, dim=1),
                    3).tolist() == [[4, 0, 8]]


def test_rel_labels_equal_the_hand_computation_on_3x3():
    r = rel_pos_label_matrix((3, 3))
    for i, row in HAND_REL_3X3.items():
        assert r[i].tolist() == row
    assert torch.all(torch.diagonal(r) == 12)
    assert torch.all(r + r.T == 24)
    assert sorted(r.unique().tolist()) == list(range(25))


def test_rel_labels_7x7_match_swin_relative_position_index():
    r = rel_pos_label_matrix((7, 7))
    attn = WindowMSA(embed_dims=8, window_size=(7, 7), num_heads=1)
    assert torch.equal(r, attn.relative_position_index)
    assert torch.all(torch.diagonal(r) == 84)
    assert torch.all(r + r.T == 168)
    assert r.unique().numel() == 169
    assert int((r == 84).sum()) == 49


def test_non_square_windows_and_grids():
    """A (2, 3) window: (2*2-1)(2*3-1) = 15 offsets, Swin's index; grids
    are (h, w) and a window must divide both sides."""
    from mmssl.models.utils.poslabel import (check_divisible_grid,
                                             num_rel_classes, to_2tuple_grid)
    assert num_rel_classes((2, 3)) == 15
    r = rel_pos_label_matrix((2, 3))
    assert r.shape == (6, 6)
    # cells (0, 0) and (1, 2): offsets (-1, -2) -> 0, (1, 2) -> 14
    assert (r[0, 5], r[5, 0], r[0, 0]) == (0, 14, 7)
    attn = WindowMSA(embed_dims=8, window_size=(2, 3), num_heads=1)
    assert torch.equal(r, attn.relative_position_index)
    assert to_2tuple_grid((2, 3)) == (2, 3) and to_2tuple_grid(4) == (4, 4)
    check_divisible_grid((4, 6), (2, 3), 'window_size')
    for grid, window in (((4, 6), (2, 4)), ((3, 6), (2, 3))):
        with pytest.raises(ValueError, match='does not tile'):
            check_divisible_grid(grid, window, 'window_size')


def test_abs_head_defaults_and_argument_checks():
    """The reference's MLP (384, 192), no dropout, timm's Linear init;
    a (2, 3) grid has 6 classes; in_channels even and >= 2; dropout in
    [0, 1); tokens must be (B, N, in_channels)."""
    head = AbsPosLabelHead(in_channels=2, grid_size=(2, 3))
    assert head.num_classes == 6 and head.fc_cls.out_features == 6
    assert head.num_tokens == 6
    head.check_tokens(torch.zeros(1, 6, 2), None)  # a full (2, 3) grid
    assert (head.fc1.in_features, head.fc1.out_features,
            head.fc2.out_features) == (1, 384, 192)
    assert head.drop.p == 0.
    assert head.init_cfg == dict(
        type='TruncNormal', layer='Linear', std=0.02, bias=0.)
    assert head.loss_weight == 0.5
    with pytest.raises(ValueError, match='dropout'):
        AbsPosLabelHead(in_channels=4, grid_size=2, dropout=1.)
    for dims in ((8, ), (8, 8, 8), 8):
        with pytest.raises(ValueError, match=r'must be \(hidden, out\)'):
            AbsPosLabelHead(in_channels=4, grid_size=2, mlp_dims=dims)
    head = AbsPosLabelHead(in_channels=4, grid_size=2, mlp_dims=(8, 5))
    assert (head.fc1.out_features, head.fc2.out_features) == (8, 5)
    rel = RelPosLabelHead(in_channels=4, grid_size=2)
    # the reference's (384, 384); one bias for the pair (fc1's), and the
    # pair indices are not in checkpoints
    assert (rel.fc1.out_features, rel.fc2.out_features) == (384, 384)
    assert rel.fc1_second.bias is None
    assert not any('pair_' in k for k in rel.state_dict())
    head = AbsPosLabelHead(in_channels=4, grid_size=2, mlp_dims=(8, 8))
    for shape in ((2, 4, 6), (8, 4)):
        with pytest.raises(ValueError, match=r'expected tokens \(B, N, 4\)'):
            head.check_tokens(torch.zeros(shape), None)


def test_all_pairs_kept_when_the_budget_covers_them():
    from mmssl.models.utils import sample_pairs
    for k in (10, 12, None):
        assert torch.equal(
            sample_pairs(10, 2, k),
            torch.arange(10).expand(2, -1))
    picked = sample_pairs(10, 2, 9, generator=torch.Generator().manual_seed(0))
    assert picked.shape == (2, 9)
    assert all(len(set(row.tolist())) == 9 for row in picked)


def test_rel_labels_of_visible_tokens_use_their_true_cells():
    """Pairs of MAE-style visible tokens (cells 4, 0, 8 of a 3x3 grid)."""
    head = RelPosLabelHead(in_channels=4, grid_size=3, mlp_dims=(8, 8))
    tokens = torch.randn(1, 3, 4)
    ids = torch.tensor([[4, 0, 8]])
    logits, labels = head.logits_and_labels(tokens, ids)
    assert logits.shape == (9, 25)
    # pairs in row-major order of (position a, position b)
    want = [HAND_REL_3X3[i][j] for i in (4, 0, 8) for j in (4, 0, 8)]
    assert labels.tolist() == want
    assert labels.view(3, 3)[0, 1] == 18 and labels.view(3, 3)[1, 2] == 0


def test_rel_labels_of_token_subsets_on_a_non_square_grid():
    """Cells of a (2, 3) grid are row * 3 + col: given as ids, every
    token of the grid gets the labels of the whole-grid pairs."""
    head = RelPosLabelHead(in_channels=4, grid_size=(2, 3), mlp_dims=(8, 8))
    tokens = torch.randn(2, 6, 4)
    _, want = head.logits_and_labels(tokens)
    _, got = head.logits_and_labels(tokens, full_grid_ids(2, 6))
    assert torch.equal(got, want)
    # cell 2 is (0, 2), cell 3 is (1, 0): r = (dh + 1) * 5 + dw + 2, so
    # (2, 3) -> 4 and (3, 2) -> 10
    _, labels = head.logits_and_labels(tokens[:1, :2], torch.tensor([[2, 3]]))
    assert labels.tolist() == [7, 4, 10, 7]


def test_window_pairs_stay_inside_swin_windows():
    first, second = window_pairs((4, 4), (2, 2))
    assert first.numel() == 4 * 16  # 4 windows, 16 ordered pairs each
    win = lambda i: (i // 4 // 2, i % 4 // 2)  # noqa: E731
    assert all(win(int(a)) == win(int(b)) for a, b in zip(first, second))
    head = RelPosLabelHead(8, grid_size=4, window_size=2, mlp_dims=(8, 8))
    assert head.num_classes == 9
    _, labels = head.logits_and_labels(torch.randn(2, 16, 8))
    assert labels.min() == 0 and labels.max() == 8
    # the same offset in every window: the pair (0, 5) and (10, 15)
    pairs = list(zip(first.tolist(), second.tolist()))
    assert labels[pairs.index((0, 5))] == labels[pairs.index((10, 15))] == 0


def test_rpl_half_projection_equals_concatenation_linear():
    torch.manual_seed(0)
    C, d1 = 16, 12
    head = RelPosLabelHead(C, grid_size=3, mlp_dims=(d1, 10)).eval()
    head.init_weights()
    tokens = torch.randn(2, 9, C)
    got = head(tokens)  # (B, 81, 25)
    cat = torch.nn.Linear(C, d1)
    with torch.no_grad():
        cat.weight.copy_(
            torch.cat([head.fc1.weight, head.fc1_second.weight], dim=1))
        cat.bias.copy_(head.fc1.bias)
    first, second = head.pair_first, head.pair_second
    pair_feats = torch.cat(
        [tokens[:, first, :C // 2], tokens[:, second, C // 2:]], dim=-1)
    want = head._tail(cat(pair_feats))
    assert got.shape == (2, 81, 25)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-6)


def test_apl_reads_the_first_half_of_the_channels_only():
    torch.manual_seed(0)
    head = AbsPosLabelHead(8, grid_size=2, mlp_dims=(8, 8)).eval()
    x = torch.randn(1, 4, 8)
    y = x.clone()
    y[..., 4:] += 1
    assert torch.equal(head(x), head(y))
    y[..., :4] += 1
    assert not torch.allclose(head(x), head(y))


def test_rpl_pair_reads_first_half_of_i_and_second_half_of_j():
    torch.manual_seed(0)
    head = RelPosLabelHead(8, grid_size=2, mlp_dims=(8, 8)).eval()
    x = torch.randn(1, 4, 8)
    y = x.clone()
    y[0, 0, 4:] += 1  # second half of token 0
    diff = (head(x) - head(y)).abs().amax(-1)[0]  # (16,) pairs
    pairs = list(zip(head.pair_first.tolist(), head.pair_second.tolist()))
    for p, (i, j) in enumerate(pairs):
        assert (diff[p] > 0) == (j == 0), (i, j)


@pytest.mark.parametrize('classes', [196, 169])
def test_loss_of_uniform_and_perfect_logits(classes):
    labels = torch.arange(classes).repeat(2)
    loss, acc = pos_label_loss(torch.zeros(2 * classes, classes), labels)
    assert loss.item() == pytest.approx(math.log(classes), abs=1e-5)
    perfect = torch.nn.functional.one_hot(labels, classes).float() * 100
    loss, acc = pos_label_loss(perfect, labels)
    assert loss.item() < 1e-6 and acc.item() == 100


@pytest.mark.parametrize('head,classes', [
    (AbsPosLabelHead(8, grid_size=14, mlp_dims=(8, 8)), 196),
    (RelPosLabelHead(8, grid_size=7, window_size=7, mlp_dims=(8, 8)), 169),
])
def test_head_loss_is_half_log_classes_at_zero_classifier(head, classes):
    """log 196 = 5.278, log 169 = 5.130, times the default weight 0.5."""
    assert head.num_classes == classes and head.loss_weight == 0.5
    torch.nn.init.zeros_(head.fc_cls.weight)
    torch.nn.init.zeros_(head.fc_cls.bias)
    out = head.loss(torch.randn(3, head.num_tokens, 8))
    assert out['loss_pos'].item() == pytest.approx(
        0.5 * math.log(classes), abs=1e-5)


def test_loss_weight_scales_the_cross_entropy():
    torch.manual_seed(0)
    a = AbsPosLabelHead(8, grid_size=3, mlp_dims=(8, 8), loss_weight=1.0)
    b = AbsPosLabelHead(8, grid_size=3, mlp_dims=(8, 8), loss_weight=0.25)
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 9, 8)
    la, lb = a.loss(x)['loss_pos'], b.loss(x)['loss_pos']
    assert lb.item() == pytest.approx(0.25 * la.item(), rel=1e-6)


def test_max_pairs_draws_distinct_pairs_per_sample():
    torch.manual_seed(0)
    head = RelPosLabelHead(8, grid_size=4, mlp_dims=(8, 8), max_pairs=40)
    logits, labels = head.logits_and_labels(torch.randn(3, 16, 8))
    assert logits.shape == (3 * 40, 49) and labels.shape == (120, )
    # visible-token pairs: at most max_pairs per sample, all distinct
    ids = torch.stack([torch.randperm(16)[:7] for _ in range(3)])
    logits, labels = head.logits_and_labels(torch.randn(3, 7, 8), ids)
    assert logits.shape == (120, 49)


def test_bad_head_arguments_name_the_key():
    with pytest.raises(ValueError, match='max_pairs'):
        RelPosLabelHead(8, grid_size=3, max_pairs=82)  # 81 pairs
    with pytest.raises(ValueError, match='window_size'):
        RelPosLabelHead(8, grid_size=6, window_size=4)
    with pytest.raises(ValueError, match='in_channels'):
        AbsPosLabelHead(7, grid_size=3)
    with pytest.raises(ValueError, match='grid_size'):
        AbsPosLabelHead(8, grid_size=(3, 0))
    head = AbsPosLabelHead(8, grid_size=3, mlp_dims=(8, 8))
    with pytest.raises(ValueError, match='grid_size'):
        head.loss(torch.randn(2, 16, 8))  # a 4x4 token grid


def test_sample_pairs_are_distinct_and_in_range():
    from mmssl.models.utils import sample_pairs
    torch.manual_seed(0)
    pick = sample_pairs(81, 3, 40, torch.device('cpu'))
    assert pick.shape == (3, 40)
    for row in pick:
        assert row.unique().numel() == 40 and 0 <= row.min() <= row.max() < 81
    assert torch.equal(
        sample_pairs(81, 2, None, torch.device('cpu')),
        torch.arange(81).expand(2, -1))


def test_classifier_reads_feature_maps_in_row_major_order():
    """Token k of the map must be grid cell k, the label the heads give it."""
    from mmssl.models.classifiers import PosLabelClassifier
    fmap = torch.arange(6.).view(1, 1, 2, 3)  # cell (r, c) holds 3r + c
    tokens = PosLabelClassifier.map_to_tokens(fmap)
    assert tokens.shape == (1, 6, 1)
    assert tokens.flatten().tolist() == [0, 1, 2, 3, 4, 5]
