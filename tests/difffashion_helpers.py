# Copyright (c) mmssl contributors. All rights reserved.
"""Tiny random models and stub denoisers for the DiffFashion tests."""
import copy
from types import SimpleNamespace

import torch
import torch.nn as nn

NUM_CLASSES = 4
#: the label-dependent region of :class:`BoxStubUNet`
BOX = (slice(4, 12), slice(2, 10))


def tiny_ddpm_cfg(img_size: int = 16,
                  num_classes: int = NUM_CLASSES,
                  out_channels: int = 3) -> dict:
    """A ClassCondDDPM config with a 2-level, 8/16-channel UNet."""
    return copy.deepcopy(
        dict(
            type='mmssl.ClassCondDDPM',
            unet=dict(
                sample_size=img_size,
                out_channels=out_channels,
                block_out_channels=(8, 16),
                layers_per_block=1,
                down_block_types=('DownBlock2D', 'AttnDownBlock2D'),
                up_block_types=('AttnUpBlock2D', 'UpBlock2D'),
                attention_head_dim=8,
                norm_num_groups=4,
                num_class_embeds=num_classes),
            num_sample_steps=3))


def tiny_vit_cfg(img_size: int = 16) -> dict:
    """A 2-block, 32-d mmpretrain ViT with patch 4."""
    return dict(
        type='mmpretrain.VisionTransformer',
        arch=dict(
            embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64),
        img_size=img_size,
        patch_size=4,
        out_type='raw')


def build_tiny(img_size: int = 16, seed: int = 0, out_channels: int = 3):
    """(ClassCondDDPM, ViT) with random weights."""
    from mmengine.registry import init_default_scope

    import mmssl.models  # noqa: F401
    from mmssl.registry import MODELS
    init_default_scope('mmpretrain')
    torch.manual_seed(seed)
    ddpm = MODELS.build(tiny_ddpm_cfg(img_size, out_channels=out_channels))
    vit = MODELS.build(tiny_vit_cfg(img_size))
    ddpm.eval()
    vit.eval()
    return ddpm, vit


class BoxStubUNet(nn.Module):
    """Noise estimate ``w x + 0.5 y box``: it depends on the label only
    inside :data:`BOX`."""

    def __init__(self, num_classes=NUM_CLASSES, size=16):
        super().__init__()
        self.config = SimpleNamespace(
            num_class_embeds=num_classes, sample_size=size)
        self.w = nn.Parameter(torch.tensor(0.1))

    def forward(self, x, t, class_labels):
        box = torch.zeros_like(x[:, :1])
        box[..., BOX[0], BOX[1]] = 1
        y = class_labels.view(-1, 1, 1, 1).to(x.dtype)
        return SimpleNamespace(sample=self.w * x + 0.5 * y * box)


class LabelBoxStubUNet(nn.Module):
    """Noise estimate ``w x + sum_k [y == k] boxes[k]``: each label in
    ``boxes`` moves its own region; the other labels move nothing.

    Every call is recorded in ``calls`` as ``(x, t, y)``.
    """

    def __init__(self, boxes, num_classes=NUM_CLASSES, size=16, w=0.1):
        super().__init__()
        self.config = SimpleNamespace(
            num_class_embeds=num_classes, sample_size=size)
        self.w = nn.Parameter(torch.tensor(float(w)))
        self.boxes = dict(boxes)
        self.calls = []

    def forward(self, x, t, class_labels):
        self.calls.append(
            (x.detach().clone(), t.clone(), class_labels.clone()))
        out = self.w * x
        for label, (rows, cols) in self.boxes.items():
            region = torch.zeros_like(x[:, :1])
            region[..., rows, cols] = 1
            hit = (class_labels == label).view(-1, 1, 1, 1).to(x.dtype)
            out = out + hit * region
        return SimpleNamespace(sample=out)


class StubDiffusion(nn.Module):
    """Holds a (stub) UNet like ``mmssl.ClassCondDDPM`` does."""

    def __init__(self, unet):
        super().__init__()
        self.unet = unet
        self.scheduler_cfg = None


def make_editor(unet_or_ddpm,
                vit,
                garment_label=0,
                label_sets=((1, 2), (3, )),
                schedule=None,
                mask=None,
                guidance=None,
                **kw):
    """A DiffFashionEditor with a handful of steps (10 respaced steps,
    reference counts scaled: start 5, mask step 3, 2 blend steps,
    resample 2)."""
    from mmssl.models.diffusion import DiffFashionEditor
    sched = dict(num_steps=10, skip=80, blend_steps=35, resample=2)
    sched.update(schedule or {})
    gen = dict(
        type='mmssl.LabelContrastMaskGenerator',
        label_sets=[list(s) for s in label_sets],
        mask_index=64)
    gen.update(mask or {})
    diffusion = unet_or_ddpm if hasattr(unet_or_ddpm, 'unet') else \
        StubDiffusion(unet_or_ddpm)
    return DiffFashionEditor(
        diffusion=diffusion,
        vit=vit,
        schedule=sched,
        mask_generator=gen,
        guidance=guidance,
        garment_label=garment_label,
        **kw).eval()


def images(seed=0, n=1, size=16):
    """A random garment and reference, (n, 3, size, size) in [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 3, size, size, generator=g) * 2 - 1,
            torch.rand(n, 3, size, size, generator=g) * 2 - 1)


#: a 2-level guided-diffusion UNet (attention at the 8 px level)
TINY_GD = dict(
    image_size=16,
    in_channels=3,
    model_channels=32,
    out_channels=6,
    num_res_blocks=1,
    attention_resolutions=(2, ),
    channel_mult=(1, 2),
    num_head_channels=16,
    num_classes=4)


def random_guided_diffusion(cfg=None, seed=0):
    """Random guided-diffusion ``UNetModel`` weights of ``cfg``."""
    from mmssl.converters import guided_diffusion_shapes
    g = torch.Generator().manual_seed(seed)
    return {
        k: torch.randn(s, generator=g) * 0.2
        for k, s in guided_diffusion_shapes(cfg or TINY_GD).items()
    }
