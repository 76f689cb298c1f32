# Copyright (c) mmssl contributors. All rights reserved.
"""Shared mask generators: inverse block / random masks, their transforms."""
import pytest
import torch
from mmpretrain.datasets.transforms import PackInputs

from mmssl.models.utils import (check_token_ids, gather_tokens,
                                inverse_block_mask, mask_to_ids, num_visible,
                                random_mask, tensor_check, unshuffle_tokens,
                                visible_count)
from mmssl.registry import TRANSFORMS


@pytest.mark.parametrize('h,w,ratio,adjust', [(14, 14, 0.8, 0.07),
                                              (14, 14, 0.75, 0.1),
                                              (8, 8, 0.75, 0.07),
                                              (6, 10, 0.6, 0.0)])
def test_inverse_block_mask_exact_count(h, w, ratio, adjust):
    g = torch.Generator().manual_seed(0)
    masks = inverse_block_mask(
        h, w, ratio, num_masks=16, adjust=adjust, generator=g)
    assert masks.shape == (16, h, w) and masks.dtype == torch.bool
    keep = num_visible(h * w, ratio)
    assert torch.all((~masks).flatten(1).sum(1) == keep)


def test_spec_counts_vit_b():
    """14 x 14, ratio 0.8: 39 kept, 157 masked, for every mask (spec 7.1)."""
    masks = torch.cat([inverse_block_mask(14, 14, 0.8, 16) for _ in range(8)])
    assert torch.all(masks.flatten(1).sum(1) == 157)


def test_inverse_block_mask_keeps_blocks():
    """Kept cells come in blocks: with no adjustment towards the exact count
    needed, the kept set is a union of 3 x 3 blocks (clipped)."""
    g = torch.Generator().manual_seed(1)
    # 1 centre (int(81 * (1/9) / 9) = 1) and int(81 * 1/9) = 9 kept cells:
    # an interior centre (49 of 81 cells) gives exactly one 3x3 square.
    squares = 0
    for _ in range(20):
        kept = ~inverse_block_mask(9, 9, 1 - 1 / 9, 1, 3, 0.0, g)[0]
        assert int(kept.sum()) == 9
        rows, cols = kept.nonzero(as_tuple=True)
        squares += int(rows.max() - rows.min() == 2
                       and cols.max() - cols.min() == 2)
    assert squares >= 5
    # with a large adjustment the mask is mostly blocks: many kept cells
    # have a kept 4-neighbour (random masks rarely do at this density)
    kept = ~inverse_block_mask(14, 14, 0.8, 64, generator=g)
    right = kept[:, :, :-1] & kept[:, :, 1:]
    rnd = ~random_mask(14, 14, 0.8, 64, generator=g)
    right_rnd = rnd[:, :, :-1] & rnd[:, :, 1:]
    assert right.sum() > 2 * right_rnd.sum()


def test_clones_differ_and_generator_is_deterministic():
    m1 = inverse_block_mask(
        14, 14, 0.8, 16, generator=torch.Generator().manual_seed(3))
    m2 = inverse_block_mask(
        14, 14, 0.8, 16, generator=torch.Generator().manual_seed(3))
    assert torch.equal(m1, m2)
    flat = m1.flatten(1)
    for i in range(16):
        for j in range(i + 1, 16):
            assert not torch.equal(flat[i], flat[j])
    m3 = inverse_block_mask(
        14, 14, 0.8, 16, generator=torch.Generator().manual_seed(4))
    assert not torch.equal(m1, m3)


def test_random_mask_counts_and_determinism():
    g = torch.Generator().manual_seed(0)
    masks = random_mask(8, 8, 0.75, 5, generator=g)
    assert masks.shape == (5, 8, 8)
    assert torch.all(masks.flatten(1).sum(1) == 48)
    again = random_mask(
        8, 8, 0.75, 5, generator=torch.Generator().manual_seed(0))
    assert torch.equal(masks, again)


@pytest.mark.parametrize('kwargs,match', [
    (dict(mask_ratio=1.0), 'mask_ratio'),
    (dict(mask_ratio=-0.1), 'mask_ratio'),
    (dict(num_masks=0), 'num_masks'),
    (dict(block_size=0), 'block_size'),
])
def test_bad_arguments(kwargs, match):
    args = dict(grid_h=4, grid_w=4, mask_ratio=0.5, num_masks=2)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        inverse_block_mask(**args)


def test_mask_to_ids_roundtrip():
    mask = torch.tensor([[1, 0, 1, 0, 1, 1], [0, 1, 1, 1, 1, 0]]).bool()
    ids_keep, ids_restore = mask_to_ids(mask)
    assert ids_keep.tolist() == [[1, 3], [0, 5]]
    x = torch.arange(12.).view(2, 6, 1)
    vis = gather_tokens(x, ids_keep)
    out = unshuffle_tokens(vis, torch.full((2, 4, 1), -1.), ids_restore)
    assert torch.equal(out[~mask], x[~mask])
    assert torch.all(out[mask] == -1)
    with pytest.raises(ValueError, match='same number of visible'):
        mask_to_ids(torch.tensor([[1, 0, 0], [1, 1, 0]]).bool())


def test_mask_to_ids_with_a_given_count():
    """A caller's V gives the same bookkeeping; a wrong V is refused, in
    eager mode by ValueError and inside a compiled graph (no graph break)
    by an in-graph assert."""
    mask = torch.tensor([[1, 0, 1, 0, 1, 1], [0, 1, 1, 1, 1, 0]]).bool()
    assert visible_count(mask) == 2
    for a, b in zip(mask_to_ids(mask), mask_to_ids(mask, 2)):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match='num_keep=3'):
        mask_to_ids(mask, 3)
    with pytest.raises(ValueError, match=r'\[1, 2\]'):
        visible_count(torch.tensor([[1, 0, 0], [1, 1, 0]]).bool())
    torch._dynamo.reset()
    compiled = torch.compile(
        lambda m: mask_to_ids(m, 2), backend='eager', fullgraph=True)
    for a, b in zip(compiled(mask), mask_to_ids(mask)):
        assert torch.equal(a, b)
    with pytest.raises(RuntimeError, match='num_keep=2'):
        compiled(torch.tensor([[1, 0, 1, 0, 1, 1], [0, 0, 1, 1, 1, 0]]))


def test_mask_to_ids_keeps_increasing_order_and_empty_batches():
    """``ids_keep`` lists the visible tokens in increasing order also for
    rows long enough that an unstable sort reorders ties; a batch without
    rows has 0 visible tokens; at least one token stays visible."""
    g = torch.Generator().manual_seed(0)
    mask = torch.stack([
        torch.randperm(100, generator=g) < 60 for _ in range(4)
    ])  # 40 visible per row
    ids_keep, ids_restore = mask_to_ids(mask)
    for row, ids in zip(mask, ids_keep):
        assert ids.tolist() == (~row).nonzero().flatten().tolist()
    assert torch.equal(ids_keep, mask_to_ids(mask, 40)[0])
    empty = torch.zeros(0, 6, dtype=torch.bool)
    assert visible_count(empty) == 0
    ids_keep, ids_restore = mask_to_ids(empty)
    assert ids_keep.shape == (0, 0) and ids_restore.shape == (0, 6)
    assert num_visible(3, 0.9) == 1 and num_visible(16, 0.75) == 4


def test_tensor_check_eager_and_compiled():
    with pytest.raises(ValueError, match='all positive'):
        tensor_check(torch.tensor([1, -1]) > 0, lambda: 'all positive')
    tensor_check(torch.tensor([1, 2]) > 0, lambda: 'never built')
    torch._dynamo.reset()
    fn = torch.compile(
        lambda x: tensor_check(x > 0, lambda: 'all positive') or x + 1,
        backend='eager',
        fullgraph=True)
    assert fn(torch.tensor([1., 2.])).tolist() == [2., 3.]
    with pytest.raises(RuntimeError, match='all positive'):
        fn(torch.tensor([1., -2.]))


def test_transforms_write_and_pack_masks():
    gen = TRANSFORMS.build(
        dict(
            type='mmssl.InverseBlockMaskGenerator',
            input_size=14,
            mask_ratio=0.8,
            num_masks=4))
    pack = PackInputs(algorithm_keys=['mask'])
    results = gen(dict(img=torch.zeros(8, 8, 3).numpy()))
    assert results['mask'].shape == (4, 14, 14)
    assert gen.num_visible == 39
    packed = pack(results)
    mask = packed['data_samples'].mask
    assert isinstance(mask, torch.Tensor) and mask.shape == (4, 14, 14)
    assert torch.all(mask.flatten(1).sum(1) == 157)
    rnd = TRANSFORMS.build(
        dict(
            type='mmssl.RandomMaskGenerator',
            input_size=(4, 6),
            mask_ratio=0.5,
            num_masks=3))
    assert rnd({})['mask'].shape == (3, 4, 6)
    assert 'block_size=3' in repr(gen)


@pytest.mark.parametrize('kwargs,match', [
    (dict(mask_ratio=1.2), 'mask_ratio'),
    (dict(num_masks=0), 'num_masks'),
    (dict(input_size=0), 'input_size'),
])
def test_transform_errors_name_the_key(kwargs, match):
    cfg = dict(type='mmssl.InverseBlockMaskGenerator')
    cfg.update(kwargs)
    with pytest.raises(ValueError, match=match):
        TRANSFORMS.build(cfg)


def test_check_token_ids_names_the_bad_id():
    """The error names the id outside [0, V): the negative one when the
    largest id is in range, the too large one otherwise; in-graph under
    torch.compile."""
    check_token_ids(torch.tensor([[0, 9]]), 10, 'M')
    check_token_ids(torch.zeros(0, 3, dtype=torch.long), 10, 'M')
    with pytest.raises(ValueError, match=r'M: token id -1 is outside .*10'):
        check_token_ids(torch.tensor([[-1, 5]]), 10, 'M')
    with pytest.raises(ValueError, match='token id 12 .*vocab_size'):
        check_token_ids(torch.tensor([[-1, 12]]), 10, 'M')
    # the vocabulary size itself is the first id out of range
    with pytest.raises(ValueError, match='token id 10 is outside'):
        check_token_ids(torch.tensor([[-1, 10]]), 10, 'M')
    torch._dynamo.reset()
    fn = torch.compile(
        lambda x: check_token_ids(x, 10, 'M') or x + 1,
        backend='eager',
        fullgraph=True)
    assert fn(torch.tensor([[1, 2]])).tolist() == [[2, 3]]
    with pytest.raises(RuntimeError, match='M: a token id is outside'):
        fn(torch.tensor([[1, 10]]))
    torch._dynamo.reset()
