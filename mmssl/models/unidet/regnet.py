# Copyright (c) mmssl contributors. All rights reserved.
"""RegNetY backbones (with squeeze-excitation) from torchvision.

mmdet's ``RegNet`` is the X family (no SE). Large-UniDet uses SEER
RegNetY-32GF, whose stage widths (232, 696, 1392, 3712) are those of
torchvision's ``regnet_y_32gf``; this wrapper returns its four stages.
"""
from typing import Sequence, Tuple

import torch.nn as nn
from mmengine.model import BaseModule
from torch import Tensor

from mmssl.registry import MODELS

__all__ = ['TorchvisionRegNet']


@MODELS.register_module()
class TorchvisionRegNet(BaseModule):
    """A torchvision RegNet as an mmdet backbone.

    Args:
        arch (str): torchvision constructor name, e.g. ``'regnet_y_32gf'``,
            ``'regnet_y_128gf'``, ``'regnet_y_400mf'``.
        out_indices (Sequence[int]): stages to return (0-3).
            Defaults to (0, 1, 2, 3).
        frozen_stages (int): freeze the stem and the first ``k`` stages
            (``4`` = all); -1 freezes nothing. Defaults to -1.
        norm_eval (bool): keep BatchNorm layers in eval mode.
            Defaults to False.
        init_cfg (dict, optional): e.g. ``dict(type='Pretrained',
            checkpoint=...)`` with a state dict in this module's keys
            (``stem.*``, ``stages.<i>.*``).

    Shapes: input ``(B, 3, H, W)``; stage ``i`` output
    ``(B, C_i, H / 2^(i+2), W / 2^(i+2))`` with ``C_i`` in
    :attr:`out_channels`.
    """

    def __init__(self,
                 arch: str = 'regnet_y_32gf',
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        import torchvision
        if not arch.startswith('regnet_') or not hasattr(
                torchvision.models, arch):
            raise ValueError(f'TorchvisionRegNet: unknown arch {arch!r}')
        if not set(out_indices) <= {0, 1, 2, 3} or not -1 <= frozen_stages \
                <= 4:
            raise ValueError('TorchvisionRegNet: out_indices must be in 0-3 '
                             'and frozen_stages in -1..4')
        net = getattr(torchvision.models, arch)(weights=None)
        self.stem = net.stem
        self.stages = nn.ModuleList([
            net.trunk_output.block1, net.trunk_output.block2,
            net.trunk_output.block3, net.trunk_output.block4
        ])
        self.out_channels = [_width(s) for s in self.stages]
        self.out_indices = tuple(out_indices)
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self._freeze()

    def _freeze(self) -> None:
        if self.frozen_stages < 0:
            return
        mods = [self.stem] + list(self.stages[:self.frozen_stages])
        for mod in mods:
            mod.eval()
            for param in mod.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True) -> 'TorchvisionRegNet':
        """Train mode, keeping frozen parts and (optionally) norms in eval."""
        super().train(mode)
        self._freeze()
        if mode and self.norm_eval:
            for mod in self.modules():
                if isinstance(mod, nn.modules.batchnorm._BatchNorm):
                    mod.eval()
        return self

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        """Features of the selected stages (see the class doc for shapes)."""
        x = self.stem(x)
        outs = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)


def _width(stage: nn.Module) -> int:
    """Output channels of a torchvision AnyStage (its last conv)."""
    convs = [m for m in stage.modules() if isinstance(m, nn.Conv2d)]
    return convs[-1].out_channels
