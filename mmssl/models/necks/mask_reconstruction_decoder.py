# Copyright (c) mmssl contributors. All rights reserved.
"""SANM's reconstruction decoder: transposed convolutions from the last
backbone feature map back to the (unmasked) input image."""
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule

from mmssl.registry import MODELS
from mmssl.utils.validation import check_choice, check_float, check_int

__all__ = [
    'DECODER_PRESETS', 'MaskReconstructionDecoder', 'reconstruction_loss',
    'ReconstructionMSELoss'
]

#: The reference's stacks (no activations between the layers).
DECODER_PRESETS: Dict[str, dict] = {
    # ResNet-18 on CIFAR: 512 x 4 x 4 -> 10 -> 15 -> 3 x 32 x 32
    'cifar':
    dict(
        in_channels=512,
        channels=(256, 128, 3),
        kernel_sizes=(4, 6, 4),
        strides=(2, 1, 2),
        output_paddings=(0, 0, 0),
        out_size=32),
    # ResNet-50 at 224: 2048 x 7 x 7 -> 25 -> 75 -> 3 x 224 x 224
    'imagenet':
    dict(
        in_channels=2048,
        channels=(256, 128, 3),
        kernel_sizes=(6, 2, 2),
        strides=(3, 3, 3),
        output_paddings=(1, 1, 0),
        out_size=224),
}


def _pair(value) -> Tuple[int, int]:
    if isinstance(value, int):
        return value, value
    return int(value[0]), int(value[1])


@MODELS.register_module()
class MaskReconstructionDecoder(BaseModule):
    """Transposed-convolution decoder of SANM (the SMR part).

    ``preset='cifar'`` is the reference's ResNet-18/CIFAR stack
    (ConvT 512->256 k4 s2, 256->128 k6 s1, 128->3 k4 s2: 4x4 -> 32x32),
    ``preset='imagenet'`` its ResNet-50 stack (ConvT 2048->256 k6 s3 op1,
    256->128 k2 s3 op1, 128->3 k2 s3: 7x7 -> 224x224). Without a preset the
    stack is given by ``in_channels`` and the per-layer lists; explicit
    arguments also override a preset's. No padding and, as the reference,
    no activations or normalisation between the layers.

    Each layer maps a side ``s`` to ``(s - 1) * stride + kernel +
    output_padding``; :meth:`output_size` computes it, and :meth:`forward`
    raises a ``ValueError`` when the output does not have the target size.

    Args:
        preset (str, optional): ``'cifar'`` or ``'imagenet'``.
        in_channels (int, optional): width of the feature map.
        channels (Sequence[int], optional): output width of each layer (the
            last is the image's channels).
        kernel_sizes (Sequence[int], optional): per layer.
        strides (Sequence[int], optional): per layer.
        output_paddings (Sequence[int], optional): per layer; zeros if
            None.
        out_size (int | tuple[int, int], optional): the image size the
            output must have (the preset's by default); None skips the
            check unless :meth:`forward` is given a target.
        init_cfg (dict, optional): Defaults to None (PyTorch's default
            init, as the reference).
    """

    def __init__(self,
                 preset: Optional[str] = None,
                 in_channels: Optional[int] = None,
                 channels: Optional[Sequence[int]] = None,
                 kernel_sizes: Optional[Sequence[int]] = None,
                 strides: Optional[Sequence[int]] = None,
                 output_paddings: Optional[Sequence[int]] = None,
                 out_size: Optional[Union[int, Tuple[int, int]]] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        name = type(self).__name__
        cfg: dict = {}
        if preset is not None:
            check_choice(preset, 'preset', name, tuple(DECODER_PRESETS))
            cfg = dict(DECODER_PRESETS[preset])
        given = dict(
            in_channels=in_channels,
            channels=channels,
            kernel_sizes=kernel_sizes,
            strides=strides,
            output_paddings=output_paddings,
            out_size=out_size)
        cfg.update({k: v for k, v in given.items() if v is not None})
        for key in ('in_channels', 'channels', 'kernel_sizes', 'strides'):
            if cfg.get(key) is None:
                raise ValueError(f'{name}: {key} is needed without a preset '
                                 f'(presets: {tuple(DECODER_PRESETS)})')
        self.in_channels = check_int(cfg['in_channels'], 'in_channels', name)
        num = len(cfg['channels'])
        layers = dict(
            channels=list(cfg['channels']),
            kernel_sizes=list(cfg['kernel_sizes']),
            strides=list(cfg['strides']),
            output_paddings=list(cfg.get('output_paddings') or [0] * num))
        for key, values in layers.items():
            if len(values) != num or num == 0:
                raise ValueError(
                    f'{name}: channels, kernel_sizes, strides and '
                    'output_paddings need one entry per layer; got '
                    f'{num} channels and {len(values)} {key}')
            for v in values:
                check_int(
                    v, key, name, minimum=0 if key == 'output_paddings' else 1)
        for op, s in zip(layers['output_paddings'], layers['strides']):
            if op >= s:
                raise ValueError(f'{name}: each output_padding must be '
                                 f'smaller than its stride, got {op} with '
                                 f'stride {s}')
        self.kernel_sizes = tuple(layers['kernel_sizes'])
        self.strides = tuple(layers['strides'])
        self.output_paddings = tuple(layers['output_paddings'])
        self.out_size = None if cfg.get('out_size') is None else _pair(
            cfg['out_size'])
        widths = [self.in_channels] + layers['channels']
        self.layers = nn.Sequential(*[
            nn.ConvTranspose2d(
                widths[i],
                widths[i + 1],
                kernel_size=k,
                stride=s,
                output_padding=op) for i, (k, s, op) in enumerate(
                    zip(self.kernel_sizes, self.strides, self.output_paddings))
        ])

    def output_size(self, in_size: Union[int, Tuple[int,
                                                    int]]) -> Tuple[int, int]:
        """(H, W) of the output for a feature map of ``in_size``."""
        size = list(_pair(in_size))
        for k, s, op in zip(self.kernel_sizes, self.strides,
                            self.output_paddings):
            size = [(v - 1) * s + k + op for v in size]
        return size[0], size[1]

    def forward(
        self,
        x: Union[torch.Tensor, Sequence[torch.Tensor]],
        target_size: Optional[Union[int, Tuple[int,
                                               int]]] = None) -> torch.Tensor:
        """Reconstruct images from a feature map.

        Args:
            x (Tensor | Sequence[Tensor]): (B, in_channels, h, w), or the
                backbone's tuple of maps (the last is used).
            target_size (int | tuple[int, int], optional): the image size
                to check against; ``out_size`` if None.

        Returns:
            Tensor: (B, channels[-1], H, W).

        Raises:
            ValueError: the output size differs from the target size.
        """
        if isinstance(x, (list, tuple)):
            x = x[-1]
        want = _pair(target_size) if target_size is not None \
            else self.out_size
        got = self.output_size(tuple(x.shape[-2:]))
        if want is not None and got != want:
            raise ValueError(
                f'{type(self).__name__}: a {tuple(x.shape[-2:])} feature map '
                f'decodes to {got}, but the target images are {want}; '
                'change the kernel_sizes/strides/output_paddings (or the '
                'preset) to match the backbone and image size')
        return self.layers(x)


def reconstruction_loss(pred: torch.Tensor,
                        target: torch.Tensor) -> torch.Tensor:
    """Mean squared error between reconstructions and the unmasked images.

    Args:
        pred (Tensor): (B, C, H, W) decoder output.
        target (Tensor): (B, C, H, W) original (normalised) images.

    Returns:
        Tensor: scalar mean over all elements.
    """
    if pred.shape != target.shape:
        raise ValueError('reconstruction_loss: pred and target shapes differ'
                         f': {tuple(pred.shape)} vs {tuple(target.shape)}')
    return F.mse_loss(pred, target.to(pred.dtype), reduction='mean')


@MODELS.register_module()
class ReconstructionMSELoss(nn.Module):
    """``loss_weight * reconstruction_loss(pred, target)``; SANM uses
    ``loss_weight=0.02`` per masked view.

    Args:
        loss_weight (float): Defaults to 1.0.
    """

    def __init__(self, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.loss_weight = check_float(
            loss_weight, 'loss_weight', type(self).__name__, low=0.)

    def forward(self, pred: torch.Tensor,
                target: torch.Tensor) -> torch.Tensor:
        return self.loss_weight * reconstruction_loss(pred, target)
