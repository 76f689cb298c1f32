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

from mmssl.evaluation.functional.fashion import key_self_similarity

__all__ = [
    'DEFAULT_LOSS_WEIGHTS', 'ViTFeatureExtractor', 'key_self_similarity',
    'patch_nce_loss', 'check_loss_weights', 'fashion_guidance_loss',
    'vit_input_size'
]

#: The reference command's weights: key self-similarity 1000, PatchNCE 200,
#: [CLS] to the reference 2000 x 0.1, semantic divergence 100 (while the
#: step index is above the editor's ``dir_until_index``), pixel L2 to the
#: reference 3000, range 200.
DEFAULT_LOSS_WEIGHTS: Dict[str, float] = dict(
    ssim=1000., contra=200., cls=200., dir=100., l2=3000., range=200.)


def check_loss_weights(
        weights: Optional[Dict[str, float]]) -> Dict[str, float]:
    """The full weight dict: defaults updated by ``weights``.

    Raises:
        KeyError: an unknown term (the message lists the known ones).
        ValueError: a weight that is not a finite number.
    """
    w = dict(DEFAULT_LOSS_WEIGHTS)
    w.update(weights or {})
    unknown = sorted(set(w) - set(DEFAULT_LOSS_WEIGHTS))
    if unknown:
        raise KeyError(f'unknown guidance weights {unknown}; known: '
                       f'{sorted(DEFAULT_LOSS_WEIGHTS)}')
    for k, v in w.items():
        if not isinstance(v, (int, float)) or v != v or abs(v) == \
                float('inf'):
            raise ValueError(f'guidance weight {k}={v!r} is not a finite '
                             'number')
    return {k: float(v) for k, v in w.items()}


def vit_input_size(vit: nn.Module, default: int = 224) -> int:
    """The image side a ViT was built for.

    ``vit.img_size_hint`` when set, else the input size of an mmcv
    ``PatchEmbed`` (``vit.patch_embed.init_input_size``), else ``default``.
    """
    size = getattr(vit, 'img_size_hint', None)
    if size is None:
        size = getattr(
            getattr(vit, 'patch_embed', None), 'init_input_size', None)
    if size is None:
        return int(default)
    return int(size if isinstance(size, int) else size[0])


class ViTFeatureExtractor:
    """Last-block keys and [CLS] token of a frozen ViT.

    A plain callable, not a module: the ViT stays owned by whoever holds
    it (e.g. ``DiffFashionEditor.vit``), so its weights appear once in a
    state dict. The features are read with forward hooks on
    ``layers[-1].attn.qkv`` and ``layers[-1]`` that live only during a
    call.

    Args:
        vit (nn.Module): a ViT with ``layers`` whose last element has
            ``attn.qkv`` (mmpretrain ``VisionTransformer`` / ``MAEViT``,
            mmssl ``D2V2ViT``). Its parameters are frozen.
        img_size (int): side the images are resized to (bilinear,
            differentiable) before the ViT, e.g. 224 for DINO.
        mean (Sequence[float]): normalisation mean of [0, 1] images.
        std (Sequence[float]): normalisation std of [0, 1] images.
    """

    def __init__(
        self,
        vit: nn.Module,
        img_size: int = 224,
        mean: Sequence[float] = (0.485, 0.456, 0.406),
        std: Sequence[float] = (0.229, 0.224, 0.225)
    ) -> None:
        layers = getattr(vit, 'layers', None)
        if layers is None or not hasattr(layers[-1], 'attn') or not hasattr(
                layers[-1].attn, 'qkv'):
            raise TypeError('ViTFeatureExtractor needs a ViT with '
                            'layers[-1].attn.qkv, got '
                            f'{type(vit).__name__}')
        self.vit = vit
        vit.eval()  # some ViTs return None from train()
        for p in vit.parameters():
            p.requires_grad_(False)
        self.img_size = int(img_size)
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)

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

    def __call__(self,
                 images: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Keys and [CLS] of images in [-1, 1].

        Args:
            images (Tensor): (B, 3, H, W) in [-1, 1].

        Returns:
            tuple[Tensor, Tensor]: the keys (B, N, C) of the last block's
            attention (the middle third of its ``qkv`` projection, heads
            concatenated per token, [CLS] first) and the [CLS] output token
            (B, C) of the last block.
        """
        x = (images + 1) / 2
        if x.shape[-1] != self.img_size or x.shape[-2] != self.img_size:
            x = F.interpolate(
                x, (self.img_size, self.img_size),
                mode='bilinear',
                align_corners=False)
        x = (x - self.mean.to(x)) / self.std.to(x)
        out: Dict[str, torch.Tensor] = {}

        def qkv_hook(module, args, output):
            out['qkv'] = output

        def block_hook(module, args, output):
            out['block'] = output[0] if isinstance(output,
                                                   (tuple, list)) else output

        last = self.vit.layers[-1]
        handles = [
            last.attn.qkv.register_forward_hook(qkv_hook),
            last.register_forward_hook(block_hook)
        ]
        try:
            self._run_vit(x)
        finally:
            for h in handles:
                h.remove()
        qkv = out['qkv']  # (B, N, 3C): [q | k | v], heads inside each
        C = qkv.shape[-1] // 3
        return qkv[..., C:2 * C], out['block'][:, 0]


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
    target = torch.zeros(
        logits.shape[:2], dtype=torch.long, device=logits.device)
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

    Terms (weights ``w``, keys of :data:`DEFAULT_LOSS_WEIGHTS`):

    * ``ssim``: ``w * MSE(S(K(x_in)), S(K_garment))`` with ``S`` the key
      self-similarity (:func:`key_self_similarity`);
    * ``contra``: ``w * patch_nce_loss(K(x_in), K_garment)``;
    * ``cls``: ``w * MSE(CLS(mask * x_in), CLS_reference)``. The product is
      taken in [-1, 1], so the ViT sees the pixels outside the mask as
      mid-grey (0.5 in [0, 1], close to the ImageNet mean, i.e. nearly
      zero after normalisation); the reference code multiplies in [0, 1]
      (black). Without a mask ``CLS(x_in)``;
    * ``dir``: ``-w * MSE(CLS(x_in), prev_cls)`` (semantic divergence from
      the previous step), only when ``prev_cls`` is given;
    * ``l2``: ``w * MSE(x_in, reference)`` over the whole image;
    * ``range``: ``w * mean((x0 - clip(x0, -1, 1))^2)``.

    Args:
        extractor (ViTFeatureExtractor): frozen ViT features.
        x_in (Tensor): (B, 3, H, W) the (noise-augmented) clean estimate
            the ViT losses see.
        x0 (Tensor): (B, 3, H, W) raw clean estimate (range loss).
        garment_keys (Tensor): (B, N, C) keys of the garment image (the
            structure target).
        reference_cls (Tensor): (B, C) [CLS] of the reference image.
        reference (Tensor): (B, 3, H, W) the reference image in [-1, 1].
        mask (Tensor, optional): (B, 1, H, W) garment mask (1 = garment).
        prev_cls (Tensor, optional): (B, C) [CLS] of the previous step's
            ``x_in``; enables the (negative) divergence term.
        weights (dict, optional): per-term weights; missing keys take the
            defaults, a weight of 0 skips the term.

    Returns:
        tuple: total loss (scalar), the weighted terms (dict of scalars),
        and the [CLS] of ``x_in`` (B, C), detached, for the next step.
    """
    w = check_loss_weights(weights)
    terms: Dict[str, torch.Tensor] = {}
    keys, cls = extractor(x_in)
    if w['ssim']:
        target = key_self_similarity(garment_keys)
        terms['ssim'] = w['ssim'] * F.mse_loss(
            key_self_similarity(keys), target)
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
