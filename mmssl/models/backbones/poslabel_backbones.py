# Copyright (c) mmssl contributors. All rights reserved.
"""mmpretrain's ViT and Swin with the switches positional labels need.

The positional-label paper trains its ViT-B + APL *with* the learned
absolute position embedding and its Swin + RPL *without* any explicit
positional encoding (relative position bias off, absolute embedding off):
position is then learned only through the label. Both settings are one
config value here, and both backbones report the token grid of each
output, which the positional heads must match.
"""
from typing import Sequence, Tuple

import torch
from mmengine.utils import to_2tuple
from mmpretrain.models.backbones import SwinTransformer, VisionTransformer
from mmpretrain.models.utils.attention import WindowMSA

from mmssl.registry import MODELS
from ..utils.attention import unbind_qkv_attention


def check_patch_grid(img_size, patch_size, key: str, owner: str) -> None:
    """The image must split into whole patches (the labels name cells)."""
    sizes = to_2tuple(img_size)
    patches = to_2tuple(patch_size)
    for size, patch in zip(sizes, patches):
        if size % patch:
            raise ValueError(
                f'{owner}: {key}.img_size={img_size} is not divisible by '
                f'{key}.patch_size={patch_size}, so the token grid would '
                'drop or pad image borders; pick an image size that is a '
                'multiple of the patch size')


def _zero_buffer(module: torch.nn.Module, name: str) -> None:
    """Replace parameter ``name`` of ``module`` by a zero, unsaved buffer."""
    old = getattr(module, name)
    delattr(module, name)
    module.register_buffer(name, torch.zeros_like(old.data), persistent=False)


@MODELS.register_module()
class PosLabelViT(VisionTransformer):
    """``mmpretrain.VisionTransformer`` with the position embedding optional.

    Args:
        use_pos_embed (bool): add the learned absolute position embedding
            (the reference's ViT-B + APL does). ``False`` replaces it by an
            unsaved zero buffer: the encoder is then equivariant to a
            permutation of the patches (without a CLS token), and only the
            positional label can teach it where a patch is. Defaults to
            True.
        *args, **kwargs: arguments of ``mmpretrain.VisionTransformer``.
    """

    def __init__(self, *args, use_pos_embed: bool = True, **kwargs) -> None:
        check_patch_grid(
            kwargs.get('img_size', 224), kwargs.get('patch_size', 16),
            'model.backbone',
            type(self).__name__)
        super().__init__(*args, **kwargs)
        unbind_qkv_attention(self)
        self.use_pos_embed = bool(use_pos_embed)
        if not self.use_pos_embed:
            _zero_buffer(self, 'pos_embed')

    def init_weights(self) -> None:
        super().init_weights()
        if not self.use_pos_embed:
            self.pos_embed.zero_()

    def token_grid(self, index: int = -1) -> Tuple[int, int]:
        """(h, w) token grid of output ``index`` (all outputs share it)."""
        return tuple(self.patch_resolution)


@MODELS.register_module()
class PosLabelSwin(SwinTransformer):
    """``mmpretrain.SwinTransformer`` with the relative position bias
    optional and checked output stages.

    Args:
        use_rel_pos_bias (bool): add the window attention's relative
            position bias. ``False`` (the reference's Swin + RPL) replaces
            every bias table by an unsaved zero buffer; with
            ``use_abs_pos_embed=False`` (the default) the model then has no
            explicit positional encoding. Defaults to True.
        out_indices (Sequence[int]): stages whose normalised feature maps
            are returned, each in ``[-num_stages, num_stages)``.
        *args, **kwargs: arguments of ``mmpretrain.SwinTransformer``.
    """

    def __init__(self,
                 *args,
                 use_rel_pos_bias: bool = True,
                 out_indices: Sequence[int] = (3, ),
                 **kwargs) -> None:
        arch = kwargs.get('arch', args[0] if args else 'tiny')
        depths = (
            arch['depths'] if isinstance(arch, dict) else
            self.arch_zoo[str(arch).lower()]['depths']
            if str(arch).lower() in self.arch_zoo else None)
        if isinstance(out_indices, int):
            out_indices = [out_indices]
        if depths is not None:
            n = len(depths)
            fixed = []
            for i in out_indices:
                if not -n <= i < n:
                    raise ValueError(
                        f'PosLabelSwin: out_indices contains stage {i}, but '
                        f'this Swin has {n} stages (0..{n - 1}); pick '
                        'stages in that range (-1 is the last)')
                fixed.append(i % n)
            out_indices = fixed
        check_patch_grid(
            kwargs.get('img_size', 224), kwargs.get('patch_size', 4),
            'model.backbone', 'PosLabelSwin')
        super().__init__(*args, out_indices=tuple(out_indices), **kwargs)
        self.use_rel_pos_bias = bool(use_rel_pos_bias)
        if not self.use_rel_pos_bias:
            for m in self.modules():
                if isinstance(m, WindowMSA):
                    _zero_buffer(m, 'relative_position_bias_table')

    def init_weights(self) -> None:
        super().init_weights()
        if not self.use_rel_pos_bias:
            for m in self.modules():
                if isinstance(m, WindowMSA):
                    m.relative_position_bias_table.zero_()

    def token_grid(self, index: int = -1) -> Tuple[int, int]:
        """(h, w) token grid of output ``index`` (into ``out_indices``).

        Stage ``s`` works on the patch grid halved ``s`` times by patch
        merging (once more for ``out_after_downsample``, except the last
        stage).
        """
        stage = self.out_indices[index]
        halvings = stage
        if self.out_after_downsample and stage < self.num_layers - 1:
            halvings += 1
        h, w = self.patch_resolution
        for _ in range(halvings):  # PatchMerging pads odd sizes
            h, w = (h + 1) // 2, (w + 1) // 2
        return h, w
