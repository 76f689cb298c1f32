# Copyright (c) mmssl contributors. All rights reserved.
"""Shared token-masking helpers (the MAE-style "keep a random subset" path).

Every masked-modelling method in mmssl that drops tokens before the encoder
(MAE, data2vec 2.0, positional labels) uses these helpers, so the
bookkeeping (``ids_keep``, ``ids_restore``, binary mask) is defined once.
"""
from typing import Optional, Tuple

import torch

from mmssl.utils.validation import check_float, check_int


def check_mask_ratio(mask_ratio: float,
                     key: str = 'mask_ratio',
                     owner: Optional[str] = None) -> float:
    """Validate a mask ratio at build time.

    Raises:
        ValueError: unless ``0 <= mask_ratio < 1``, naming ``key`` and
            ``owner``.
    """
    return check_float(
        mask_ratio,
        key,
        owner,
        low=0,
        high=1,
        inclusive=(True, False),
        note='the fraction of patches removed')


def num_visible(num_tokens: int, mask_ratio: float) -> int:
    """Number of tokens kept: ``int(num_tokens * (1 - mask_ratio))``, >= 1."""
    return max(1, int(num_tokens * (1 - mask_ratio)))


def masking_ids(
    batch: int,
    num_tokens: int,
    mask_ratio: float,
    noise: Optional[torch.Tensor] = None,
    device: Optional[torch.device] = None,
    dtype: torch.dtype = torch.float32
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The bookkeeping of :func:`random_masking` without the tokens.

    Lets an encoder choose the visible patches before it embeds them (only
    those are embedded). Draws the same random numbers as
    :func:`random_masking`, so both give the same masks for one seed.

    Args:
        batch (int): B.
        num_tokens (int): L.
        mask_ratio (float): Fraction of tokens removed.
        noise (Tensor, optional): (B, L) sort keys; random if None.
        device (torch.device, optional): Where the random keys are drawn.
        dtype (torch.dtype): dtype of the mask. Defaults to fp32.

    Returns:
        tuple: ``mask`` (B, L) (1 = removed), ``ids_restore`` (B, L) and
        ``ids_keep`` (B, V), as :func:`random_masking` returns them.
    """
    keep = num_visible(num_tokens, mask_ratio)
    if noise is None:
        noise = torch.rand(batch, num_tokens, device=device)
    ids_shuffle = torch.argsort(noise, dim=1)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    ids_keep = ids_shuffle[:, :keep]
    mask = torch.ones(batch, num_tokens, device=noise.device, dtype=dtype)
    mask[:, :keep] = 0
    mask = torch.gather(mask, 1, ids_restore)
    return mask, ids_restore, ids_keep


def random_masking(
    x: torch.Tensor,
    mask_ratio: float,
    noise: Optional[torch.Tensor] = None
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Keep a uniformly random subset of tokens per sample (MAE masking).

    Args:
        x (Tensor): tokens, shape (B, L, C).
        mask_ratio (float): fraction of tokens removed.
        noise (Tensor, optional): (B, L) sort keys; random if None (lets
            tests and multi-view methods fix the permutation).

    Returns:
        tuple:
        - x_visible (Tensor): (B, V, C) kept tokens, V = num_visible(L, r).
        - mask (Tensor): (B, L) float, 1 = removed, 0 = kept.
        - ids_restore (Tensor): (B, L) long, un-shuffles the concatenation
          ``[visible, removed]`` back to the original order.
        - ids_keep (Tensor): (B, V) long, indices of the kept tokens.
    """
    B, L, C = x.shape
    mask, ids_restore, ids_keep = masking_ids(B, L, mask_ratio, noise,
                                              x.device, x.dtype)
    x_visible = torch.gather(x, 1, ids_keep.unsqueeze(-1).expand(-1, -1, C))
    return x_visible, mask, ids_restore, ids_keep


def unshuffle_tokens(visible: torch.Tensor, fill: torch.Tensor,
                     ids_restore: torch.Tensor) -> torch.Tensor:
    """Put visible tokens and filler tokens back into the original order.

    Args:
        visible (Tensor): (B, V, C) encoded visible tokens.
        fill (Tensor): (B, L - V, C) tokens for the removed positions
            (a learned mask token, noise, ...).
        ids_restore (Tensor): (B, L) from :func:`random_masking`.

    Returns:
        Tensor: (B, L, C).
    """
    x = torch.cat([visible, fill], dim=1)
    return torch.gather(x, 1,
                        ids_restore.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


def patchify(imgs: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, L, p*p*C), element order (row, col, channel).

    The order of mmpretrain's ``MAEPretrainHead.patchify`` (the same
    tensor), gathered in one copy from a channels-last view: the inner
    (col, channel) run of each patch row is contiguous there.
    """
    B, C, H, W = imgs.shape
    p = patch_size
    if H % p or W % p:
        raise ValueError(f'image size {H}x{W} is not divisible by the patch '
                         f'size {p}')
    h, w = H // p, W // p
    x = imgs.permute(0, 2, 3, 1).reshape(B, h, p, w, p, C).transpose(2, 3)
    return x.reshape(B, h * w, p * p * C)


def patch_mean_var(patches: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-patch mean and unbiased variance, (B, L, D) -> two (B, L, 1).

    ``patches.mean(-1)`` and ``patches.var(-1)`` (what mmpretrain's
    normalised-pixel target uses) up to rounding, computed in two passes
    (the mean, then the squared deviations summed over D - 1) instead of
    torch's per-element Welford update, several times slower on the CPU.
    """
    mean, _, var = _mean_dev_var(patches)
    return mean, var


def _mean_dev_var(x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
    """Mean (B, L, 1), deviations (B, L, D), unbiased variance (B, L, 1)."""
    mean = x.mean(dim=-1, keepdim=True)
    dev = x - mean
    return mean, dev, (dev * dev).sum(dim=-1, keepdim=True) / (x.shape[-1] - 1)


def pixel_targets(imgs: torch.Tensor,
                  patch_size: int,
                  ids: Optional[torch.Tensor] = None,
                  norm_pix: bool = True,
                  eps: float = 1e-6) -> torch.Tensor:
    """MAE's pixel targets: (B, C, H, W) -> (B, L or M, p*p*C).

    mmpretrain's ``MAEPretrainHead.construct_target`` (patches in
    :func:`patchify`'s order, each normalised by its own mean and
    ``sqrt(var + eps)`` when ``norm_pix``), for the patches at ``ids``
    (B, M) only when given: those are gathered first, so the statistics
    are taken of the M patches the loss reads. Equal to the head's
    targets gathered at ``ids`` up to rounding (:func:`patch_mean_var`).
    """
    x = patchify(imgs, patch_size)
    if ids is not None:
        x = gather_tokens(x, ids)
    if not norm_pix:
        return x
    _, dev, var = _mean_dev_var(x)
    return dev / (var + eps)**.5


def unpatchify(x: torch.Tensor,
               patch_size: int,
               channels: int = 3,
               grid: Optional[Tuple[int, int]] = None) -> torch.Tensor:
    """Inverse of :func:`patchify`: (B, L, p*p*C) -> (B, C, H, W)."""
    B, L, _ = x.shape
    p = patch_size
    if grid is None:
        h = w = int(round(L**0.5))
    else:
        h, w = grid
    if h * w != L:
        raise ValueError(f'{L} patches do not form a {h}x{w} grid')
    x = x.reshape(B, h, w, p, p, channels)
    x = torch.einsum('nhwpqc->nchpwq', x)
    return x.reshape(B, channels, h * p, w * p)


def _check_num_masks(num_masks: int, key: str = 'num_masks') -> int:
    return check_int(
        num_masks, key, note='masks drawn per image, the clone batch M')


def _check_grid(grid_h: int, grid_w: int) -> None:
    check_int(grid_h, 'grid_h')
    check_int(grid_w, 'grid_w')


def random_mask(grid_h: int,
                grid_w: int,
                mask_ratio: float,
                num_masks: int = 1,
                generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Uniformly random patch masks with an exact number of visible patches.

    The mask-tensor counterpart of :func:`random_masking`: each of the
    ``num_masks`` masks keeps ``num_visible(h * w, mask_ratio)`` patches
    chosen uniformly at random.

    Args:
        grid_h (int): Patch rows h.
        grid_w (int): Patch columns w.
        mask_ratio (float): Fraction of patches removed, in [0, 1).
        num_masks (int): Number of independent masks M. Defaults to 1.
        generator (torch.Generator, optional): Source of randomness; the
            global torch generator if None.

    Returns:
        Tensor: (M, h, w) bool, True = masked (removed), False = visible.
    """
    _check_grid(grid_h, grid_w)
    check_mask_ratio(mask_ratio)
    _check_num_masks(num_masks)
    L = grid_h * grid_w
    keep = num_visible(L, mask_ratio)
    noise = torch.rand(num_masks, L, generator=generator)
    ranks = torch.argsort(torch.argsort(noise, dim=1), dim=1)
    return (ranks >= keep).view(num_masks, grid_h, grid_w)


def inverse_block_mask(
        grid_h: int,
        grid_w: int,
        mask_ratio: float,
        num_masks: int = 1,
        block_size: int = 3,
        adjust: float = 0.07,
        generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Inverse block masks of data2vec 2.0: blocks of patches are *kept*.

    Follows fairseq's ``compute_block_mask_2d(..., inverse_mask=True,
    require_same_masks=True)``: with the keep fraction ``k = 1 - mask_ratio``
    and ``L = h * w``, draw ``int(L * (k + adjust) / block_size**2)`` centre
    cells (with replacement) and keep the ``block_size x block_size`` block
    around each (clipped at the border); then drop kept cells or keep extra
    cells, chosen uniformly at random, until exactly
    ``num_visible(L, mask_ratio) = int(L * k)`` cells are kept. Every mask
    therefore has the same number of visible patches, so the visible tokens
    of a batch form a rectangular tensor.

    Args:
        grid_h (int): Patch rows h.
        grid_w (int): Patch columns w.
        mask_ratio (float): Fraction of patches removed, in [0, 1)
            (data2vec 2.0: 0.8 for ViT-B, 0.75 for ViT-L).
        num_masks (int): Number of independent masks M (the clone batch).
            Defaults to 1.
        block_size (int): Side of the kept blocks. Defaults to 3.
        adjust (float): Extra keep probability for the number of centres,
            compensating for overlapping blocks. Defaults to 0.07.
        generator (torch.Generator, optional): Source of randomness; the
            global torch generator if None.

    Returns:
        Tensor: (M, h, w) bool, True = masked (removed), False = visible.
    """
    _check_grid(grid_h, grid_w)
    check_mask_ratio(mask_ratio)
    _check_num_masks(num_masks)
    check_int(block_size, 'block_size')
    check_float(adjust, 'adjust')
    L = grid_h * grid_w
    keep_frac = 1 - mask_ratio
    target = num_visible(L, mask_ratio)
    num_centres = max(0, int(L * (keep_frac + adjust) / block_size**2))

    kept = torch.zeros(num_masks, grid_h, grid_w, dtype=torch.bool)
    if num_centres > 0:
        centres = torch.randint(
            0, L, (num_masks, num_centres), generator=generator)
        rows = torch.div(centres, grid_w, rounding_mode='floor')
        cols = centres % grid_w
        m_idx = torch.arange(num_masks).unsqueeze(1).expand_as(centres)
        offset = block_size // 2
        for di in range(block_size):
            r = (rows + di - offset).clamp(0, grid_h - 1)
            for dj in range(block_size):
                c = (cols + dj - offset).clamp(0, grid_w - 1)
                kept[m_idx, r, c] = True
    kept = kept.view(num_masks, L)
    # Exactly `target` kept cells: order kept cells first, each group in a
    # random order, and keep the first `target`. This drops a uniformly
    # random subset of the kept cells (too many) or keeps a uniformly random
    # subset of the others (too few), as fairseq's multinomial draws do.
    noise = torch.rand(num_masks, L, generator=generator)
    key = noise + (~kept).float() * 2
    ranks = torch.argsort(torch.argsort(key, dim=1), dim=1)
    return (ranks >= target).view(num_masks, grid_h, grid_w)


EXACT_COUNT_HINT = ('use a generator with an exact count '
                    '(mmssl.InverseBlockMaskGenerator, '
                    'mmssl.RandomMaskGenerator)')


def tensor_check(cond: torch.Tensor, message) -> None:
    """Refuse bad tensor values in eager mode and inside a compiled graph.

    Eager: reads ``cond`` (one host sync) and raises ``ValueError`` with
    ``message()`` when it is False. Under ``torch.compile``: an in-graph
    ``torch._assert_async`` (a ``RuntimeError`` with the same message), so
    the check neither breaks the graph nor syncs.

    Args:
        cond (Tensor): A bool tensor; every element must be True.
        message (Callable[[], str]): Builds the error text (only called on
            failure in eager mode, once at trace time when compiling).
    """
    if torch.compiler.is_compiling():
        torch._assert_async(cond.all(), message())
    elif not bool(cond.all()):
        raise ValueError(message())


def check_index_range(ids: torch.Tensor, size: int, what: str, owner: str,
                      fix: str) -> None:
    """Refuse integer indices outside ``[0, size)`` (:func:`tensor_check`:
    a ``ValueError`` naming the offending value in eager mode, an in-graph
    assert under ``torch.compile``). The message reads
    ``'{owner}: {what} {value} is outside [0, {size}); {fix}'``.

    Args:
        ids (Tensor): Integer indices, any shape.
        size (int): The number of valid indices.
        what (str): What an index is, e.g. ``'token id'``, ``'class label'``.
        owner (str): Who checks (the model or loss named in the error).
        fix (str): How to fix it.
    """
    if not ids.numel():
        return

    def message() -> str:
        if torch.compiler.is_compiling():
            bad = f'a {what}'
        else:
            low, high = int(ids.min()), int(ids.max())
            bad = f'{what} {high if high >= size else low}'
        return f'{owner}: {bad} is outside [0, {size}); {fix}'

    tensor_check((ids >= 0) & (ids < size), message)


def check_token_ids(ids: torch.Tensor, vocab_size: int, owner: str) -> None:
    """Refuse token ids outside the vocabulary ``[0, vocab_size)``
    (:func:`check_index_range`).

    Args:
        ids (Tensor): (B, T) long token ids.
        vocab_size (int): The embedding's rows.
        owner (str): The model named in the error.
    """
    check_index_range(
        ids, vocab_size, 'token id', owner,
        'the tokenizer does not match the model: set '
        "model.backbone.vocab_size to the tokenizer's vocabulary size")


def mask_to_ids(
        mask: torch.Tensor,
        num_keep: Optional[int] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """Shuffle bookkeeping of a given binary mask (visible tokens first).

    Args:
        mask (Tensor): (B, L) bool or 0/1, True/1 = removed. Every row must
            have the same number of visible tokens V.
        num_keep (int, optional): V when the caller knows it (a Python int,
            so the output sizes are static and a compiled graph does not
            break on reading it from the mask); read from the mask if None.

    Returns:
        tuple:
        - ids_keep (Tensor): (B, V) long, indices of the visible tokens in
          increasing order.
        - ids_restore (Tensor): (B, L) long, un-shuffles ``[visible,
          removed]`` back to the original order (as in
          :func:`random_masking`).

    Raises:
        ValueError: if the rows have different numbers of visible tokens,
            or not ``num_keep`` of them.
    """
    if mask.dim() != 2:
        raise ValueError(f'mask must be (B, L), got {tuple(mask.shape)}')
    removed = mask.bool()
    if num_keep is None:
        num_keep = visible_count(removed)
    else:
        check_int(num_keep, 'num_keep', 'mask_to_ids', minimum=0)
        tensor_check((~removed).sum(dim=1) == num_keep,
                     lambda: f'every mask must leave num_keep={num_keep} '
                     f'visible tokens; {EXACT_COUNT_HINT}')
    ids_shuffle = torch.argsort(removed.to(torch.uint8), dim=1, stable=True)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    return ids_shuffle[:, :num_keep], ids_restore


@torch.compiler.disable
def visible_count(mask: torch.Tensor) -> int:
    """V, the visible tokens every row of a (R, *layout) mask leaves (True
    = removed), as a Python int; raises ``ValueError`` when rows differ.

    Always eager (a compiled caller breaks its graph here once, before the
    encoder, and passes V on as a static size).
    """
    visible = (~mask.bool()).flatten(1).sum(dim=1)
    if not visible.numel():
        return 0
    if not bool((visible == visible[0]).all()):
        raise ValueError(
            'every mask must leave the same number of visible tokens, got '
            f'{sorted(set(visible.tolist()))}; {EXACT_COUNT_HINT}')
    return int(visible[0])


def gather_tokens(x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Select tokens per sample: (B, L, C) gathered by (B, K) -> (B, K, C)."""
    return torch.gather(x, 1, ids.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


def kept_ids(ids_restore: torch.Tensor, num_keep: int) -> torch.Tensor:
    """Original indices of the visible tokens, in the encoder's order.

    The inverse of the bookkeeping of :func:`random_masking` and
    :func:`mask_to_ids`: the encoder's token ``k`` is the patch
    ``kept_ids(ids_restore, V)[:, k]`` of the image.

    Args:
        ids_restore (Tensor): (B, L) long, from the masking.
        num_keep (int): V, the number of visible tokens.

    Returns:
        Tensor: (B, V) long (``ids_keep`` of :func:`random_masking`).
    """
    return torch.argsort(ids_restore, dim=1)[:, :num_keep]


def removed_ids(ids_restore: torch.Tensor, num_keep: int) -> torch.Tensor:
    """Original indices of the removed tokens, in the decoder's order.

    The complement of :func:`kept_ids`: token ``V + k`` of the decoder's
    concatenation ``[visible, removed]`` is the patch
    ``removed_ids(ids_restore, V)[:, k]``.

    Args:
        ids_restore (Tensor): (B, L) long, from the masking.
        num_keep (int): V, the number of visible tokens.

    Returns:
        Tensor: (B, L - V) long.
    """
    return torch.argsort(ids_restore, dim=1)[:, num_keep:]
