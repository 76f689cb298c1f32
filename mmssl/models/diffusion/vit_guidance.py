# Copyright (c) mmssl contributors. All rights reserved.
"""ViT features and guidance losses of DiffFashion.

Structure is compared through the self-similarity of the last block's keys
(Splice / DiffuseIT), appearance through the last block's [CLS] token, as in
the reference code with DINO ViT-B/8. Any mmpretrain ``VisionTransformer``
(DINO weights converted with
``tools/model_converters/dino_vit_to_mmpretrain.py``, or mmssl's MAE ViT)
and mmssl's ``D2V2ViT`` work: features are read with forward hooks on
``layers[-1].attn.qkv`` and ``layers[-1]``.
"""
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    'DEFAULT_LOSS_WEIGHTS', 'ViTFeatureExtractor', 'key_self_similarity',
    'patch_nce_loss', 'fashion_guidance_loss'
]

#: The reference command's weights: key self-similarity 1000, PatchNCE 200,
#: [CLS] to the reference 2000 x 0.1, semantic divergence 100 (while the
#: timestep is above ``dir_until_t``), pixel L2 to the reference 3000,
#: range 200.
DEFAULT_LOSS_WEIGHTS: Dict[str, float] = dict(
    ssim=1000., contra=200., cls=200., dir=100., l2=3000., range=200.)


class ViTFeatureExtractor(nn.Module):
    """Last-block keys and [CLS] token of a frozen ViT.

    Args:
        vit (nn.Module): a ViT with ``layers`` whose last element has
            ``attn.qkv`` (mmpretrain ``VisionTransformer`` / ``MAEViT``,
            mmssl ``D2V2ViT``). Its parameters are frozen.
        img_size (int): side the images are resized to (bilinear,
            differentiable) before the ViT, e.g. 224 for DINO.
        mean (Sequence[float]): normalisation mean of [0, 1] images.
        std (Sequence[float]): normalisation std of [0, 1] images.
    """

    def __init__(self,
                 vit: nn.Module,
                 img_size: int = 224,
                 mean: Sequence[float] = (0.485, 0.456, 0.406),
                 std: Sequence[float] = (0.229, 0.224, 0.225)) -> None:
        super().__init__()
        layers = getattr(vit, 'layers', None)
        if layers is None or not hasattr(layers[-1], 'attn') or not hasattr(
                layers[-1].attn, 'qkv'):
            raise TypeError('ViTFeatureExtractor needs a ViT with '
                            'layers[-1].attn.qkv, got '
                            f'{type(vit).__name__}')
        self.vit = vit
        vit.eval()  # some ViTs return None from train()
        for p in self.vit.parameters():
            p.requires_grad_(False)
        self.img_size = img_size
        self.register_buffer('mean', torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer('std', torch.tensor(std).view(1, 3, 1, 1))
        self._out: Dict[str, torch.Tensor] = {}
        layers[-1].attn.qkv.register_forward_hook(self._qkv_hook)
        layers[-1].register_forward_hook(self._block_hook)

    def _qkv_hook(self, module, args, output):
        self._out['qkv'] = output

    def _block_hook(self, module, args, output):
        self._out['block'] = output[0] if isinstance(output,
                                                     (tuple, list)) else output

    def _run_vit(self, x: torch.Tensor) -> None:
        try:
            from mmpretrain.models import VisionTransformer
        except ImportError:  # pragma: no cover
            VisionTransformer = ()
        if VisionTransformer and isinstance(self.vit, VisionTransformer):
            # bypass MAEViT's random masking: plain full-image forward
            VisionTransformer.forward(self.vit, x)
        else:
            self.vit(x)

    def forward(self, images: torch.Tensor) -> Tuple[torch.Tensor,
                                                     torch.Tensor]:
        """Keys and [CLS] of images in [-1, 1].

        Args:
            images (Tensor): (B, 3, H, W) in [-1, 1].

        Returns:
            tuple[Tensor, Tensor]: keys (B, N, C) of the last block (heads
            concatenated per token, [CLS] first) and the [CLS] output token
            (B, C) of the last block.
        """
        x = (images + 1) / 2
        if x.shape[-1] != self.img_size or x.shape[-2] != self.img_size:
            x = F.interpolate(
                x, (self.img_size, self.img_size),
                mode='bilinear',
                align_corners=False)
        x = (x - self.mean) / self.std
        self._out.clear()
        self._run_vit(x)
        qkv = self._out['qkv']
        C = qkv.shape[-1] // 3
        keys = qkv[..., C:2 * C]
        return keys, self._out['block'][:, 0]


def key_self_similarity(keys: torch.Tensor) -> torch.Tensor:
    """Cosine self-similarity of tokens.

    Args:
        keys (Tensor): (B, N, C).

    Returns:
        Tensor: (B, N, N), symmetric with ones on the diagonal.
    """
    k = F.normalize(keys, dim=-1)
    return k @ k.transpose(1, 2)


def patch_nce_loss(k_out: torch.Tensor,
                   k_src: torch.Tensor,
                   tau: float = 0.07) -> torch.Tensor:
    """PatchNCE on keys (the reference code's contrastive structure term).

    For each token i the logits are ``[cos(out_i, src_i), cos(out_i, src_j)
    for j]`` with the ``j = i`` negative replaced by -10, divided by ``tau``;
    cross-entropy with the positive at index 0, mean over tokens and images.

    Args:
        k_out (Tensor): (B, N, C) keys of the generated image.
        k_src (Tensor): (B, N, C) keys of the garment image.
        tau (float): temperature. Defaults to 0.07.

    Returns:
        Tensor: scalar loss.
    """
    q = F.normalize(k_out, dim=-1)
    k = F.normalize(k_src, dim=-1)
    l_pos = (q * k).sum(-1, keepdim=True)  # (B, N, 1)
    l_neg = q @ k.transpose(1, 2)  # (B, N, N)
    eye = torch.eye(l_neg.shape[-1], dtype=torch.bool, device=l_neg.device)
    l_neg = l_neg.masked_fill(eye, -10.0)
    logits = torch.cat([l_pos, l_neg], dim=-1) / tau
    target = torch.zeros(logits.shape[:2], dtype=torch.long,
                         device=logits.device)
    return F.cross_entropy(logits.flatten(0, 1), target.flatten())


def fashion_guidance_loss(
        extractor: ViTFeatureExtractor,
        x_in: torch.Tensor,
        x0: torch.Tensor,
        garment_keys: torch.Tensor,
        reference_cls: torch.Tensor,
        reference: torch.Tensor,
        mask: Optional[torch.Tensor] = None,
        prev_cls: Optional[torch.Tensor] = None,
        weights: Optional[Dict[str, float]] = None
) -> Tuple[torch.Tensor, Dict[str, torch.Tensor], torch.Tensor]:
    """The guidance energy ``L`` of one step (lower is better).

    Args:
        extractor (ViTFeatureExtractor): frozen ViT features.
        x_in (Tensor): (B, 3, H, W) the (noise-augmented) clean estimate
            the ViT losses see.
        x0 (Tensor): (B, 3, H, W) raw clean estimate (range loss).
        garment_keys (Tensor): (B, N, C) keys of the garment image.
        reference_cls (Tensor): (B, C) [CLS] of the reference image.
        reference (Tensor): (B, 3, H, W) the reference image in [-1, 1].
        mask (Tensor, optional): (B, 1, H, W) garment mask; the [CLS] term
            sees ``mask * x_in`` when given.
        prev_cls (Tensor, optional): (B, C) [CLS] of the previous step's
            ``x_in``; enables the (negative) divergence term.
        weights (dict, optional): per-term weights, keys of
            :data:`DEFAULT_LOSS_WEIGHTS`; missing keys take the defaults,
            a weight of 0 skips the term.

    Returns:
        tuple: total loss (scalar), the weighted terms (dict of scalars),
        and the [CLS] of ``x_in`` (B, C), detached, for the next step.
    """
    w = dict(DEFAULT_LOSS_WEIGHTS)
    w.update(weights or {})
    unknown = set(w) - set(DEFAULT_LOSS_WEIGHTS)
    if unknown:
        raise KeyError(f'unknown guidance weights {sorted(unknown)}; known: '
                       f'{sorted(DEFAULT_LOSS_WEIGHTS)}')
    terms: Dict[str, torch.Tensor] = {}
    keys, cls = extractor(x_in)
    if w['ssim']:
        target = key_self_similarity(garment_keys)
        terms['ssim'] = w['ssim'] * F.mse_loss(key_self_similarity(keys),
                                               target)
    if w['contra']:
        terms['contra'] = w['contra'] * patch_nce_loss(keys, garment_keys)
    if w['cls']:
        cls_in = cls if mask is None else extractor(x_in * mask)[1]
        terms['cls'] = w['cls'] * F.mse_loss(cls_in, reference_cls)
    if w['dir'] and prev_cls is not None:
        terms['dir'] = -w['dir'] * F.mse_loss(cls, prev_cls)
    if w['l2']:
        terms['l2'] = w['l2'] * F.mse_loss(x_in, reference)
    if w['range']:
        terms['range'] = w['range'] * ((x0 - x0.clamp(-1, 1))**2).mean()
    total = sum(terms.values()) if terms else x_in.new_zeros(())
    return total, terms, cls.detach()
