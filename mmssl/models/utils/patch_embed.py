# Copyright (c) mmssl contributors. All rights reserved.
"""Embed the visible patches only (the visible-token ViT path).

MAE-style encoders embed every patch and then drop 75 % of them. A patch
embedding whose convolution has its kernel equal to its stride (the ViT
one) is a linear map of each patch on its own, so
:func:`embed_patches_at` cuts the chosen patches out of the image and
applies the convolution's weights to those only: a quarter of the
embedding's forward and weight-gradient work at MAE's masking, with the
same numbers up to rounding (the product runs as a matrix product instead
of a convolution).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from .masking import gather_tokens

__all__ = ['embed_patches_at', 'patch_columns']


def patch_columns(imgs: torch.Tensor, patch_h: int,
                  patch_w: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, h*w, C*p_h*p_w) patches, row-major over the grid.

    Each patch is flattened in (channel, row, column) order, the order of a
    flattened ``Conv2d`` weight (out, C, p_h, p_w).
    """
    B, C, H, W = imgs.shape
    h, w = H // patch_h, W // patch_w
    x = imgs.reshape(B, C, h, patch_h, w, patch_w).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(B, h * w, C * patch_h * patch_w)


def _plain_patch_conv(patch_embed: nn.Module, imgs: torch.Tensor) -> bool:
    """Whether ``patch_embed`` is mmcv's PatchEmbed with a conv that maps
    each whole patch of ``imgs`` on its own (kernel = stride, no padding)."""
    proj = getattr(patch_embed, 'projection', None)
    if type(proj) is not nn.Conv2d or proj.groups != 1:
        return False
    if (proj.kernel_size != proj.stride or proj.padding != (0, 0)
            or proj.dilation != (1, 1)):
        return False
    kh, kw = proj.kernel_size
    return imgs.dim(
    ) == 4 and imgs.shape[2] % kh == 0 and imgs.shape[3] % kw == 0


def embed_patches_at(patch_embed: nn.Module, imgs: torch.Tensor,
                     ids: torch.Tensor) -> torch.Tensor:
    """``gather_tokens(patch_embed(imgs)[0], ids)``, embedding the ``ids``
    patches only where the embedding allows it.

    Args:
        patch_embed (nn.Module): mmcv's ``PatchEmbed`` (``projection`` conv,
            optional ``adaptive_padding`` and per-token ``norm``), as
            mmpretrain's ViT builds it.
        imgs (Tensor): (B, C, H, W) images.
        ids (Tensor): (B, V) long, indices of the wanted patches in the
            row-major patch grid.

    Returns:
        Tensor: (B, V, embed_dims) embedded patches. Other embeddings (a
        conv with overlapping or padded windows, images the patch size does
        not divide) embed every patch and gather, as before.
    """
    if not _plain_patch_conv(patch_embed, imgs):
        return gather_tokens(patch_embed(imgs)[0], ids)
    proj = patch_embed.projection
    kh, kw = proj.kernel_size
    x = gather_tokens(patch_columns(imgs, kh, kw), ids)
    x = F.linear(x, proj.weight.flatten(1), proj.bias)
    norm = getattr(patch_embed, 'norm', None)
    return x if norm is None else norm(x)
