# Copyright (c) mmssl contributors. All rights reserved.
"""DiffFashion: reference-based garment appearance transfer by diffusion.

The pipeline of Cao et al. (arXiv 2302.06826) on diffusers parts:

1. **Garment mask** (:meth:`DiffFashion.make_mask`): the garment image is
   noised to the start step and denoised without guidance under the
   garment's label down to the mask step; the clean estimate there is fed
   back to the class-conditional UNet under the garment label and under each
   unrelated label of a set. Pixels whose posterior mean depends on the
   label (z-score of the squared difference above ``mask_threshold``) form
   the mask, cleaned by a morphological opening and closing.
2. **Structure-aware transfer** (:meth:`DiffFashion.transfer`): sampling
   starts from the *noised reference* at the start step (the first step
   repeated ``resample`` times with re-noising); during the first
   ``blend_steps`` steps after the start, pixels outside the mask are
   replaced by the garment image noised to the current timestep; every step
   is guided by gradients of ViT losses (key self-similarity and PatchNCE
   towards the garment, [CLS] and pixels towards the reference, see
   :func:`mmssl.models.diffusion.fashion_guidance_loss`).

DDPM steps are written by hand (the guidance term enters the posterior mean,
``mu' = mu - Sigma grad L``, which ``scheduler.step`` cannot take); DDIM
steps add the guidance in epsilon space (``eps' = eps + sqrt(1 - a_t) grad
L``) and use ``DDIMScheduler.step``.

Step counts are given for a 200-step respacing as in the reference command
(skip 80, mask at index 64, blend for 35 steps) and scale with ``num_steps``.
"""
import os
import os.path as osp
from typing import Callable, Dict, List, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn as nn

from mmssl.models.diffusion import (DEFAULT_LOSS_WEIGHTS,
                                    ViTFeatureExtractor, blend_background,
                                    clean_mask, ddpm_posterior,
                                    fashion_guidance_loss,
                                    label_contrast_score, noise_augment,
                                    predict_x0, renoise, smooth_score,
                                    space_timesteps, threshold_mask)
from mmssl.models.diffusion.ddpm import DEFAULT_DDPM_SCHEDULE

__all__ = [
    'DiffFashion', 'MaskError', 'WeightFileError', 'load_fashion_image',
    'load_diffusion_model', 'load_vit', 'make_grid', 'save_image',
    'colour_match', 'write_outputs', 'fashion_metrics', 'pixel_metrics',
    'load_vit_weights'
]

_REF_STEPS = 200  # the reference command's --timestep_respacing


def _standardise(z: torch.Tensor) -> torch.Tensor:
    """Z-score of each (H, W) map of a (B, H, W) tensor."""
    flat = z.flatten(1)
    return (z - flat.mean(1).view(-1, 1, 1)) / flat.std(1).view(
        -1, 1, 1).clamp(min=1e-12)


class MaskError(ValueError):
    """The garment mask is empty (or covers nothing usable)."""


class WeightFileError(FileNotFoundError):
    """A weight file is missing; the message names where to get it."""


# ---------------------------------------------------------------------------
# images
# ---------------------------------------------------------------------------
def load_fashion_image(path: str, size: int) -> torch.Tensor:
    """Read an image as a (1, 3, size, size) tensor in [-1, 1].

    Documented conversions: grayscale (and palette) images are converted to
    RGB by repeating the channel; images with alpha are composited onto a
    white background; any size is resized to ``size x size`` (Lanczos),
    ignoring the aspect ratio, as the reference code does.

    Args:
        path (str): image file.
        size (int): output side.

    Returns:
        Tensor: (1, 3, size, size) in [-1, 1].

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not a readable image, or smaller than 8 px.
    """
    from PIL import Image, UnidentifiedImageError
    if not osp.isfile(path):
        raise FileNotFoundError(f'image file not found: {path}')
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in ('RGBA', 'LA') or (img.mode == 'P'
                                              and 'transparency' in img.info):
                img = img.convert('RGBA')
                bg = Image.new('RGBA', img.size, (255, 255, 255, 255))
                img = Image.alpha_composite(bg, img)
            img = img.convert('RGB')
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f'{path} is not a readable image: {err}') from err
    if min(img.size) < 8:
        raise ValueError(f'{path} is too small ({img.size[0]}x{img.size[1]}'
                         ' px); need at least 8 px per side')
    img = img.resize((size, size), Image.LANCZOS)
    arr = torch.from_numpy(np.asarray(img, dtype=np.float32).copy())
    return (arr.permute(2, 0, 1)[None] / 127.5) - 1


def to_uint8(img: torch.Tensor) -> np.ndarray:
    """(3, H, W) or (1, H, W) in [-1, 1] -> (H, W, 3) uint8."""
    img = img.detach().float().cpu().clamp(-1, 1)
    if img.shape[0] == 1:
        img = img.expand(3, -1, -1)
    return ((img + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()


def save_image(img: torch.Tensor, path: str) -> None:
    """Save a (3, H, W) or (1, H, W) tensor in [-1, 1] as an image file."""
    from PIL import Image
    Image.fromarray(to_uint8(img)).save(path)


def make_grid(images: Sequence[torch.Tensor], pad: int = 2) -> torch.Tensor:
    """Side-by-side row of (3 or 1, H, W) images in [-1, 1] with white gaps.

    Returns:
        Tensor: (3, H, n * W + (n - 1) * pad).
    """
    rows = [im.expand(3, -1, -1) if im.shape[0] == 1 else im for im in images]
    H = rows[0].shape[1]
    gap = torch.ones(3, H, pad)
    out = []
    for i, im in enumerate(rows):
        if i:
            out.append(gap)
        out.append(im.detach().float().cpu())
    return torch.cat(out, dim=2)


def colour_match(img: torch.Tensor,
                 reference: torch.Tensor,
                 mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Match per-channel mean and std of ``img`` to ``reference``.

    A light stand-in for the reference code's MKL colour transfer: inside
    the mask (when given) the statistics of the masked pixels are matched to
    the whole reference image; outside the image is unchanged.

    Args:
        img (Tensor): (B, 3, H, W) in [-1, 1].
        reference (Tensor): (B, 3, H, W) in [-1, 1].
        mask (Tensor, optional): (B, 1, H, W), 1 = garment.

    Returns:
        Tensor: (B, 3, H, W) in [-1, 1].
    """
    if mask is None:
        mask = torch.ones_like(img[:, :1])
    m = mask.to(img.dtype)
    n = m.sum((2, 3), keepdim=True).clamp(min=1)
    mu = (img * m).sum((2, 3), keepdim=True) / n
    sd = (((img - mu)**2 * m).sum((2, 3), keepdim=True) / n).sqrt()
    rmu = reference.mean((2, 3), keepdim=True)
    rsd = reference.std((2, 3), keepdim=True)
    out = (img - mu) / sd.clamp(min=1e-5) * rsd + rmu
    return (m * out + (1 - m) * img).clamp(-1, 1)


# ---------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------
_DDPM_HINT = (
    'Train the small class-conditional model with `python tools/train.py '
    'configs/difffashion/ddpm_unet-tiny_1xb64-10e_embedded32.py`, or convert '
    "guided-diffusion's 256x256_diffusion.pt (https://github.com/openai/"
    'guided-diffusion, "Download pre-trained models") with '
    'tools/model_converters/guided_diffusion_to_diffusers.py.')
_VIT_HINT = (
    'Train a small ViT with `python tools/train.py configs/mae/'
    'mae_vit-tiny-p8_1xb64-coslr-30e_embedded.py`, or download DINO ViT-B/8 '
    '(https://dl.fbaipublicfiles.com/dino/dino_vitbase8_pretrain/'
    'dino_vitbase8_pretrain.pth, from https://github.com/facebookresearch/'
    'dino) and convert it with '
    'tools/model_converters/dino_vit_to_mmpretrain.py.')


def _check_file(path: Optional[str], what: str, hint: str) -> str:
    if not path or not osp.isfile(path):
        raise WeightFileError(f'{what} not found: {path!r}. {hint}')
    return path


def load_diffusion_model(
        config: Optional[str],
        checkpoint: str,
        device: Union[str, torch.device] = 'cpu') -> nn.Module:
    """Build an ``mmssl.ClassCondDDPM`` and load its weights.

    Args:
        config (str, optional): mmengine config whose ``model`` is a
            ClassCondDDPM; ``None`` takes the model config stored in the
            checkpoint (``meta['model_cfg']`` of converted checkpoints,
            ``meta['cfg']`` of those written by ``tools/train.py``).
        checkpoint (str): a checkpoint written by ``tools/train.py`` or by
            the guided-diffusion converter.
        device (str | torch.device): where to put the model.

    Returns:
        nn.Module: the model in eval mode (``.unet``, ``.scheduler_cfg``).

    Raises:
        WeightFileError: a file is missing (the message says where to get
            the weights).
        ValueError: no config given and none in the checkpoint.
    """
    from mmengine.config import Config
    from mmengine.runner import load_checkpoint

    from mmssl.registry import MODELS
    _check_file(checkpoint, 'diffusion checkpoint', _DDPM_HINT)
    if config is None:
        meta = torch.load(checkpoint, map_location='cpu',
                          weights_only=True).get('meta') or {}
        if 'model_cfg' in meta:  # converted checkpoints
            model_cfg = meta['model_cfg']
        elif isinstance(meta.get('cfg'), str):  # written by the runner
            model_cfg = Config.fromstring(meta['cfg'], '.py').model
        else:
            raise ValueError(f'{checkpoint} holds no model config; pass '
                             '--config')
    else:
        _check_file(config, 'diffusion config', _DDPM_HINT)
        model_cfg = Config.fromfile(config).model
    import mmssl.models  # noqa: F401  (registers ClassCondDDPM)
    model = MODELS.build(model_cfg)
    load_checkpoint(model, checkpoint, map_location='cpu', strict=True,
                    logger='silent')
    return model.to(device).eval()


def load_vit(config: Optional[str], checkpoint: str,
             device: Union[str, torch.device] = 'cpu') -> nn.Module:
    """Load the ViT whose features guide the transfer.

    Args:
        config (str, optional): an mmengine config with ``model.backbone``
            (e.g. the tiny MAE one), or a config whose ``model`` is itself
            a ViT. ``None`` builds DINO ViT-B/8 (mmpretrain
            ``VisionTransformer``, arch ``b``, patch 8, 224 px), the weights
            of which come from ``dino_vit_to_mmpretrain.py``.
        checkpoint (str): weights; keys may carry ``backbone.``.
        device (str | torch.device): where to put the model.

    Returns:
        nn.Module: the ViT (eval mode); ``img_size`` attribute set to the
        side it expects.
    """
    from mmengine.config import Config

    from mmssl.registry import MODELS
    _check_file(checkpoint, 'ViT checkpoint', _VIT_HINT)
    if config is None:
        vit_cfg = dict(
            type='mmpretrain.VisionTransformer',
            arch='b',
            img_size=224,
            patch_size=8,
            out_type='raw')
    else:
        _check_file(config, 'ViT config', _VIT_HINT)
        model_cfg = Config.fromfile(config).model
        vit_cfg = model_cfg.get('backbone', model_cfg)
        vit_cfg = dict(vit_cfg)
        vit_cfg.pop('init_cfg', None)
    import mmssl.models  # noqa: F401
    vit = MODELS.build(vit_cfg)
    load_vit_weights(vit, checkpoint)
    size = vit_cfg.get('img_size', 224)
    vit.img_size_hint = size if isinstance(size, int) else size[0]
    vit.to(device)
    vit.eval()  # mmpretrain ViTs return None from train()
    return vit


def load_vit_weights(vit: nn.Module, checkpoint: str) -> None:
    """Load ViT weights (keys with or without ``backbone.``) into ``vit``.

    Args:
        vit (nn.Module): the built ViT.
        checkpoint (str): a checkpoint of the ViT or of a model holding it
            as ``backbone``.

    Raises:
        WeightFileError: no such file (the message says where to get one).
        KeyError: weights of the ViT are missing from the file.
    """
    _check_file(checkpoint, 'ViT checkpoint', _VIT_HINT)
    ckpt = torch.load(checkpoint, map_location='cpu', weights_only=True)
    state = ckpt.get('state_dict', ckpt)
    if any(k.startswith('backbone.') for k in state):
        state = {
            k[len('backbone.'):]: v
            for k, v in state.items() if k.startswith('backbone.')
        }
    missing, unexpected = vit.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith('head')]
    if missing:
        raise KeyError(f'{checkpoint} lacks ViT weights {missing[:8]} '
                       f'({len(missing)} in all). {_VIT_HINT}')


# ---------------------------------------------------------------------------
# the pipeline
# ---------------------------------------------------------------------------
class DiffFashion:
    """Garment mask + structure-aware, ViT-guided appearance transfer.

    Args:
        unet (nn.Module): a diffusers ``UNet2DModel`` with a class embedding
            (3 output channels, or 6 = epsilon + learned variance).
        vit (nn.Module): the guidance ViT (see
            :class:`mmssl.models.diffusion.ViTFeatureExtractor`).
        garment_label (int): class the garment belongs to (reference: 636,
            "mailbag").
        mask_label_sets (Sequence[Sequence[int]]): sets of unrelated labels;
            each gives a candidate score map and mask.
        scheduler (dict, optional): ``DDPMScheduler`` / ``DDIMScheduler``
            arguments of the training schedule (1000 linear-beta steps).
        sampler (str): ``'ddpm'`` (reference) or ``'ddim'`` (eta 0).
        num_steps (int): respaced sampling steps. Defaults to 200.
        skip (int): steps skipped at the start, for 200 steps (80).
        mask_index (int): step index of the mask, for 200 steps (64).
        blend_steps (int): steps after the start with background blending,
            for 200 steps (35).
        resample (int): how often the first step is run (10).
        mask_threshold (float): z-score threshold (-0.2).
        mask_clean_kernel (int): opening/closing size (3; 1 = off).
        mask_smooth (int): box filter of the score maps before the
            threshold (1 = off, the reference; larger helps noisy maps of
            small models).
        clip_x0_mask (bool): clip the clean estimate inside the mask's
            posterior means (the reference has both variants). False.
        loss_weights (dict, optional): guidance weights, defaults
            :data:`mmssl.models.diffusion.DEFAULT_LOSS_WEIGHTS`.
        dir_until_t (int): the divergence term acts while the timestep is
            above this (100 of 1000).
        vit_img_size (int, optional): ViT input side; defaults to
            ``vit.img_size_hint`` or 224.
        vit_mean / vit_std (Sequence[float]): ViT input normalisation of
            [0, 1] images (ImageNet).
        colour_matching (bool): match the result's colours to the reference
            inside the mask (the reference code uses MKL). True.
        mask_mode (str): ``'mean'`` (mmssl's default): the score maps of
            the sets are averaged into one mask and the transfer runs once;
            ``'per_set'`` (the reference code): one mask per set and one
            transfer per mask, see :meth:`__call__`.
        mask_draws (int): noise draws of the mask run; the score maps of
            the draws are averaged before the threshold (1 = the
            reference).
        mask_source (str): what the UNet sees at the mask step:
            ``'trajectory'`` (the reference) feeds back the clean estimate
            reached by denoising the noised garment from the start step;
            ``'noised'`` (DiffEdit-like) is the garment noised directly to
            the mask step, no denoising run.
        mask_contrast (str): ``'mean'`` (the reference) or ``'per_label'``,
            see :func:`mmssl.models.diffusion.label_contrast_score`.
    """

    def __init__(self,
                 unet: nn.Module,
                 vit: nn.Module,
                 garment_label: int,
                 mask_label_sets: Sequence[Sequence[int]],
                 scheduler: Optional[dict] = None,
                 sampler: str = 'ddpm',
                 num_steps: int = 200,
                 skip: int = 80,
                 mask_index: int = 64,
                 blend_steps: int = 35,
                 resample: int = 10,
                 mask_threshold: float = -0.2,
                 mask_clean_kernel: int = 3,
                 mask_smooth: int = 1,
                 clip_x0_mask: bool = False,
                 loss_weights: Optional[Dict[str, float]] = None,
                 dir_until_t: int = 100,
                 vit_img_size: Optional[int] = None,
                 vit_mean: Sequence[float] = (0.485, 0.456, 0.406),
                 vit_std: Sequence[float] = (0.229, 0.224, 0.225),
                 colour_matching: bool = True,
                 mask_mode: str = 'mean',
                 mask_draws: int = 1,
                 mask_source: str = 'trajectory',
                 mask_contrast: str = 'mean') -> None:
        from diffusers import DDIMScheduler, DDPMScheduler
        if sampler not in ('ddpm', 'ddim'):
            raise ValueError(f"sampler must be 'ddpm' or 'ddim', got "
                             f'{sampler!r}')
        num_classes = getattr(unet.config, 'num_class_embeds', None)
        if not num_classes:
            raise ValueError('DiffFashion needs a class-conditional UNet '
                             '(num_class_embeds)')
        if mask_mode not in ('mean', 'per_set'):
            raise ValueError("mask_mode must be 'mean' or 'per_set', got "
                             f'{mask_mode!r}')
        if int(mask_draws) < 1:
            raise ValueError(f'mask_draws must be >= 1, got {mask_draws}')
        if mask_source not in ('trajectory', 'noised'):
            raise ValueError("mask_source must be 'trajectory' or 'noised',"
                             f' got {mask_source!r}')
        if mask_contrast not in ('mean', 'per_label'):
            raise ValueError("mask_contrast must be 'mean' or 'per_label', "
                             f'got {mask_contrast!r}')
        self.mask_source = mask_source
        self.mask_contrast = mask_contrast
        self.num_classes = int(num_classes)
        self.set_labels(garment_label, mask_label_sets)
        self.mask_mode = mask_mode
        self.mask_draws = int(mask_draws)
        self.unet = unet.eval()
        for p in self.unet.parameters():
            p.requires_grad_(False)
        sched = dict(DEFAULT_DDPM_SCHEDULE, **(scheduler or {}))
        sched.pop('variance_type', None)
        self.sampler = sampler
        if sampler == 'ddpm':
            self.scheduler = DDPMScheduler(**sched)
            T = self.scheduler.config.num_train_timesteps
            self.scheduler.set_timesteps(
                timesteps=space_timesteps(T, num_steps))
        else:
            self.scheduler = DDIMScheduler(**sched)
            self.scheduler.set_timesteps(num_steps)
        self.timesteps = [int(t) for t in self.scheduler.timesteps]
        self.alphas_cumprod = self.scheduler.alphas_cumprod.float()
        n = len(self.timesteps)

        def scale(k):
            return int(round(k * n / _REF_STEPS))

        self.start = n - scale(skip) - 1  # index (0 = least noisy)
        if self.start < 1:
            raise ValueError(f'skip={skip} leaves no steps of {n}')
        self.mask_index = min(scale(mask_index), self.start)
        self.blend_steps = scale(blend_steps)
        self.resample = max(1, int(resample))
        self.mask_threshold = mask_threshold
        self.mask_clean_kernel = mask_clean_kernel
        self.mask_smooth = mask_smooth
        self.clip_x0_mask = clip_x0_mask
        self.loss_weights = dict(loss_weights or {})
        self.dir_until_t = dir_until_t
        size = vit_img_size or getattr(vit, 'img_size_hint', 224)
        self.extractor = ViTFeatureExtractor(vit, size, vit_mean, vit_std)
        self.colour_matching = colour_matching

    def set_labels(self, garment_label: int,
                   mask_label_sets: Sequence[Sequence[int]]) -> None:
        """Set the garment's label and the unrelated label sets.

        Args:
            garment_label (int): class of the garment.
            mask_label_sets (Sequence[Sequence[int]]): non-empty sets of
                labels other than ``garment_label``.

        Raises:
            ValueError: an empty set, a label outside the UNet's classes,
                or the garment label inside a set.
        """
        num_classes = self.num_classes
        labels = [garment_label] + [y for s in mask_label_sets for y in s]
        if not mask_label_sets or any(len(s) == 0 for s in mask_label_sets):
            raise ValueError('mask_label_sets needs at least one non-empty '
                             'set of labels')
        bad = [y for y in labels if not 0 <= int(y) < num_classes]
        if bad:
            raise ValueError(f'labels {bad} outside [0, {num_classes})')
        if garment_label in [y for s in mask_label_sets for y in s]:
            raise ValueError('the garment label must not be in the mask '
                             'label sets')
        self.garment_label = int(garment_label)
        self.mask_label_sets = [[int(y) for y in s] for s in mask_label_sets]

    # -- schedule bookkeeping (index i: 0 = least noisy) ---------------------
    def t_at(self, i: int) -> int:
        """Training timestep of step index ``i``."""
        return self.timesteps[len(self.timesteps) - 1 - i]

    def _a(self, i: int) -> torch.Tensor:
        return self.alphas_cumprod[self.t_at(i)] if i >= 0 else \
            torch.tensor(1.0)

    def add_noise(self, x0: torch.Tensor, i: int,
                  generator: Optional[torch.Generator]) -> torch.Tensor:
        """``q_sample`` of ``x0`` (B, 3, H, W) to step index ``i``."""
        noise = torch.randn(x0.shape, generator=generator)
        return self.scheduler.add_noise(x0, noise.to(x0),
                                        torch.tensor([self.t_at(i)]))

    def _eps(self, x: torch.Tensor, i: int, label):
        """UNet noise (and variance) output at step ``i``; ``label`` is an
        int or a (B,) tensor of per-image labels."""
        t = torch.full((x.shape[0], ), self.t_at(i), dtype=torch.long,
                       device=x.device)
        if isinstance(label, torch.Tensor):
            y = label.to(device=x.device, dtype=torch.long)
        else:
            y = torch.full((x.shape[0], ), label, dtype=torch.long,
                           device=x.device)
        out = self.unet(x, t, class_labels=y).sample
        if out.shape[1] == 2 * x.shape[1]:
            return out[:, :x.shape[1]], out[:, x.shape[1]:]
        return out, None

    # -- one step --------------------------------------------------------
    def step(self,
             x: torch.Tensor,
             i: int,
             generator: Optional[torch.Generator] = None,
             guide: Optional[Callable] = None) -> tuple:
        """One (guided) denoising step from index ``i`` to ``i - 1``.

        Args:
            x (Tensor): (B, 3, H, W) sample at step ``i``.
            i (int): step index.
            generator (torch.Generator, optional): for the noise.
            guide (callable, optional): ``guide(x_in, x0) -> loss``; its
                gradient w.r.t. ``x`` (through the UNet) guides the step.

        Returns:
            tuple: the sample at ``i - 1`` (B, 3, H, W) and the clean
            estimate x0 (B, 3, H, W), both detached.
        """
        a_t, a_prev = self._a(i), self._a(i - 1)
        grad = None
        with torch.enable_grad():
            x_req = x.detach().requires_grad_(guide is not None)
            eps, var_out = self._eps(x_req, i, self.garment_label)
            x0 = predict_x0(x_req, eps, a_t)
            if guide is not None:
                loss = guide(noise_augment(x0, x_req, a_t), x0)
                if loss.requires_grad:
                    grad = torch.autograd.grad(loss, x_req)[0]
        eps, x0 = eps.detach(), x0.detach()
        var_out = None if var_out is None else var_out.detach()
        noise = torch.randn(x.shape, generator=generator).to(x)
        if self.sampler == 'ddim':
            if grad is not None:
                eps = eps + (1 - a_t).sqrt() * grad
            out = self.scheduler.step(eps, self.t_at(i), x.detach(), eta=0.0)
            return out.prev_sample, x0
        mean, var = ddpm_posterior(x0.clamp(-1, 1), x.detach(), a_t, a_prev,
                                   var_out)
        if grad is not None:
            mean = mean - var * grad
        if i == 0:
            return mean, x0
        return mean + var.sqrt() * noise, x0

    def _resampled_step(self, x: torch.Tensor, i: int,
                        generator: torch.Generator,
                        guide: Optional[Callable] = None,
                        progress: Optional[Callable] = None):
        """Step ``i``; at the start step it runs ``resample`` times, the
        result re-noised back to step ``i`` in between (as the reference).

        Returns:
            tuple: ``x`` at step ``i - 1`` (B, 3, S, S) and the last clean
            estimate (B, 3, S, S).
        """
        reps = self.resample if i == self.start else 1
        for r in range(reps):
            x_next, x0 = self.step(x, i, generator, guide)
            if progress:
                progress()
            if r < reps - 1:
                noise = torch.randn(x.shape, generator=generator)
                x = renoise(x_next, self._beta(i), noise.to(x))
        return x_next, x0

    def _beta(self, i: int) -> torch.Tensor:
        return 1 - self._a(i) / self._a(i - 1)

    # -- A. mask ------------------------------------------------------------
    def _mask_scores(self, garment: torch.Tensor,
                     generator: Optional[torch.Generator],
                     progress: Optional[Callable[[], None]]
                     ) -> List[torch.Tensor]:
        """Score maps (B, H, W) of one noise draw, one per label set."""
        if self.mask_source == 'noised':
            return self._contrast_scores(
                self.add_noise(garment, self.mask_index, generator))
        x = self.add_noise(garment, self.start, generator)
        for i in range(self.start, self.mask_index, -1):
            x, _ = self._resampled_step(x, i, generator, None, progress)
        # clean estimate at the mask step, fed back at that step
        eps, _ = self._eps(x, self.mask_index, self.garment_label)
        x0 = predict_x0(x, eps, self._a(self.mask_index))
        return self._contrast_scores(x0)

    def _to_mask(self, z: torch.Tensor) -> torch.Tensor:
        return clean_mask(
            threshold_mask(smooth_score(z, self.mask_smooth),
                           self.mask_threshold), self.mask_clean_kernel)

    @torch.no_grad()
    def make_mask(self,
                  garment: torch.Tensor,
                  generator: Optional[torch.Generator] = None,
                  progress: Optional[Callable[[], None]] = None) -> dict:
        """Automatic garment mask from label-dependent denoising.

        The unguided run from the start step down to the mask step (with
        ``mask_source='noised'``: the noising of the garment to the mask
        step) is done ``mask_draws`` times with fresh noise, ``progress``
        being called at each denoising step; the z-score maps of the draws
        are averaged per label set (and standardised again) before the
        optional smoothing, the threshold and the cleaning.

        Args:
            garment (Tensor): (B, 3, H, W) garment images in [-1, 1].
            generator (torch.Generator, optional): for the noise.
            progress (callable, optional): called once per model step.

        Returns:
            dict: ``mask`` (B, 1, H, W) float in {0, 1} (from the mean of
            the sets' score maps), ``score`` (B, H, W) that mean,
            ``candidates`` list of (B, H, W) bool masks, one per label set,
            and ``set_scores`` the list of the sets' (B, H, W) maps.

        Raises:
            MaskError: the mask is empty for some image (with ``mask_mode
                = 'per_set'``: some candidate mask is empty).
        """
        draws = [
            self._mask_scores(garment, generator, progress)
            for _ in range(self.mask_draws)
        ]
        set_scores = [
            _standardise(torch.stack(maps).mean(0)) if len(maps) > 1 else
            maps[0] for maps in zip(*draws)
        ]
        candidates = [self._to_mask(z) for z in set_scores]
        score = torch.stack(set_scores).mean(0)
        mask = self._to_mask(score)
        check = candidates if self.mask_mode == 'per_set' else [mask]
        for k, m in enumerate(check):
            empty = [b for b in range(m.shape[0]) if not m[b].any()]
            if empty:
                which = f' of label set {k}' if self.mask_mode == \
                    'per_set' else ''
                raise MaskError(
                    f'the garment mask{which} is empty for image(s) '
                    f'{empty}; lower the mask threshold, change the label '
                    'sets, or pass a mask')
        return dict(
            mask=mask.unsqueeze(1).float(),
            score=score,
            candidates=candidates,
            set_scores=set_scores)

    def _label_means(self, x: torch.Tensor,
                     labels: Sequence[int]) -> List[torch.Tensor]:
        """Posterior means (B, C, H, W) at the mask step of ``x`` under each
        label, from one batched UNet call."""
        i, B = self.mask_index, x.shape[0]
        xs = x.repeat(len(labels), 1, 1, 1)
        y = torch.tensor(list(labels)).repeat_interleave(B)
        eps, var = self._eps(xs, i, y)
        x0 = predict_x0(xs, eps, self._a(i))
        if self.clip_x0_mask:
            x0 = x0.clamp(-1, 1)
        mean = ddpm_posterior(x0, xs, self._a(i), self._a(i - 1), var)[0]
        return list(mean.split(B))

    def _contrast_scores(self, x: torch.Tensor) -> List[torch.Tensor]:
        """Score maps (B, H, W) of ``x`` at the mask step, one per set."""
        means = self._label_means(
            x, [self.garment_label] +
            [y for labels in self.mask_label_sets for y in labels])
        mu_ref, k, scores = means[0], 1, []
        for labels in self.mask_label_sets:
            scores.append(
                label_contrast_score(mu_ref, means[k:k + len(labels)],
                                     self.mask_contrast))
            k += len(labels)
        return scores

    # -- B. transfer --------------------------------------------------------
    def transfer(self,
                 garment: torch.Tensor,
                 reference: torch.Tensor,
                 mask: Optional[torch.Tensor] = None,
                 generator: Optional[torch.Generator] = None,
                 progress: Optional[Callable[[], None]] = None,
                 return_losses: bool = False) -> dict:
        """Structure-preserving, ViT-guided sampling.

        Args:
            garment (Tensor): (B, 3, H, W) garment images in [-1, 1].
            reference (Tensor): (B, 3, H, W) appearance references.
            mask (Tensor, optional): (B, 1, H, W), 1 = garment; ``None``
                runs without blending and with an unmasked [CLS] term.
            generator (torch.Generator, optional): for the noise.
            progress (callable, optional): called once per model step.
            return_losses (bool): also return the guidance terms per step.

        Returns:
            dict: ``result`` (B, 3, H, W) in [-1, 1] (colour-matched when
            enabled), ``raw`` (B, 3, H, W) before colour matching and, with
            ``return_losses``, ``losses`` (list of dicts of floats).
        """
        if garment.shape != reference.shape:
            raise ValueError('garment and reference must have the same '
                             f'shape, got {tuple(garment.shape)} and '
                             f'{tuple(reference.shape)}')
        with torch.no_grad():
            g_keys, _ = self.extractor(garment)
            _, r_cls = self.extractor(reference)
        weights = self.loss_weights
        active = any({**DEFAULT_LOSS_WEIGHTS, **weights}.values())
        state = dict(prev_cls=None, t=None)
        log: List[Dict[str, float]] = []

        def guide(x_in, x0):
            use_dir = state['t'] > self.dir_until_t
            total, terms, cls = fashion_guidance_loss(
                self.extractor, x_in, x0, g_keys, r_cls, reference, mask,
                state['prev_cls'] if use_dir else None, weights)
            state['prev_cls'] = cls
            if return_losses:
                log.append({k: float(v) for k, v in terms.items()})
            return total

        x = self.add_noise(reference, self.start, generator)
        x0 = reference
        for i in range(self.start, -1, -1):
            state['t'] = self.t_at(i)
            x, x0 = self._resampled_step(x, i, generator,
                                         guide if active else None, progress)
            if mask is not None and self.start - self.blend_steps <= i \
                    < self.start:
                x = blend_background(x, mask,
                                     self.add_noise(garment, i, generator))
        raw = x0.clamp(-1, 1)
        result = colour_match(raw, reference, mask) \
            if self.colour_matching else raw
        out = dict(result=result, raw=raw)
        if return_losses:
            out['losses'] = log
        return out

    def num_model_steps(self, with_mask: bool = True) -> int:
        """Denoising steps of :meth:`__call__` (for progress bars)."""
        transfer = self.start + self.resample
        mask = 0 if self.mask_source == 'noised' else \
            (self.start - self.mask_index + self.resample - 1) * \
            self.mask_draws
        if with_mask and self.mask_mode == 'per_set':
            transfer *= len(self.mask_label_sets)
        return transfer + (mask if with_mask else 0)

    def __call__(self,
                 garment: torch.Tensor,
                 reference: torch.Tensor,
                 mask: Optional[torch.Tensor] = None,
                 use_mask: bool = True,
                 seed: Optional[int] = 0,
                 progress: Optional[Callable[[], None]] = None) -> dict:
        """Mask (unless given or disabled) then transfer.

        With ``mask_mode='per_set'`` and an automatic mask, the transfer
        runs once per label set's mask, as the reference code does; each
        run starts from the same generator state, so the runs differ only
        by their masks.

        Args:
            garment (Tensor): (B, 3, H, W) in [-1, 1].
            reference (Tensor): (B, 3, H, W) in [-1, 1].
            mask (Tensor, optional): (B, 1, H, W) given mask.
            use_mask (bool): False runs the transfer without a mask.
            seed (int, optional): seed of the sampling noise.
            progress (callable, optional): called once per model step.

        Returns:
            dict: ``result`` and ``raw`` (B, 3, H, W), ``mask`` (B, 1, H, W)
            or None, and ``score`` (B, H, W) when the mask was made here.
            In ``per_set`` mode ``result``, ``raw`` and ``mask`` are those
            of the first set and ``per_set`` lists one dict (``mask``,
            ``result``, ``raw``) per label set.
        """
        gen = torch.Generator().manual_seed(seed) if seed is not None \
            else None
        out: dict = dict(mask=None)
        if use_mask and mask is None:
            out.update(self.make_mask(garment, gen, progress))
            if self.mask_mode == 'per_set':
                state = gen.get_state() if gen is not None else None
                runs = []
                for cand in out['candidates']:
                    if state is not None:
                        gen.set_state(state)
                    m = cand.unsqueeze(1).float()
                    runs.append(
                        dict(mask=m,
                             **self.transfer(garment, reference, m, gen,
                                             progress)))
                out.update(runs[0])
                out['per_set'] = runs
                return out
        elif use_mask:
            if not (mask > 0).any():
                raise MaskError('the given garment mask is empty')
            out['mask'] = mask
        out.update(
            self.transfer(garment, reference, out['mask'], gen, progress))
        return out


def pixel_metrics(result: torch.Tensor, garment: torch.Tensor,
                  mask: Optional[torch.Tensor],
                  true_mask: Optional[torch.Tensor] = None
                  ) -> Dict[str, float]:
    """The pixel scores of a transfer: background change and mask quality.

    Args:
        result (Tensor): (1, 3, H, W) output in [-1, 1].
        garment (Tensor): (1, 3, H, W) garment image in [-1, 1].
        mask (Tensor, optional): (1, 1, H, W) mask used, 1 = garment;
            ``None`` counts every pixel as garment.
        true_mask (Tensor, optional): (1, 1, H, W) true silhouette.

    Returns:
        dict: ``background_l1`` (mean absolute difference to the garment
        outside ``true_mask``, else outside ``mask``, in [0, 1] units;
        ``nan`` when there is no background), ``mask_fraction`` and, with
        ``true_mask``, ``mask_iou`` (intersection over union of ``mask >
        0.5`` and ``true_mask > 0.5``; 0 when both are empty).
    """
    m = torch.ones_like(result[:, :1]) if mask is None else mask.float()
    fg = m if true_mask is None else true_mask.float()
    bg = (1 - fg).expand_as(result)
    n_bg = float(bg.sum())
    bg_l1 = float(((result - garment).abs() / 2 * bg).sum() / n_bg) \
        if n_bg > 0 else float('nan')
    out = dict(background_l1=bg_l1, mask_fraction=float(m.mean()))
    if true_mask is not None:
        a, b = m > 0.5, true_mask > 0.5
        out['mask_iou'] = float((a & b).sum() / (a | b).sum().clamp(min=1))
    return out


def _token_mask(true_mask: torch.Tensor, num_tokens: int) -> torch.Tensor:
    """(1, 1, H, W) mask -> (N,) bool over [CLS] + the patch grid: the
    patches at least half inside the mask ([CLS] excluded)."""
    side = int(round((num_tokens - 1)**0.5))
    if side * side != num_tokens - 1:
        raise ValueError(f'cannot lay {num_tokens - 1} ViT tokens on a '
                         'square grid')
    grid = torch.nn.functional.adaptive_avg_pool2d(true_mask.float(),
                                                   side).flatten() >= 0.5
    return torch.cat([grid.new_zeros(1), grid])


@torch.no_grad()
def fashion_metrics(result: torch.Tensor, garment: torch.Tensor,
                    reference: torch.Tensor, mask: Optional[torch.Tensor],
                    extractor: ViTFeatureExtractor,
                    true_mask: Optional[torch.Tensor] = None
                    ) -> Dict[str, float]:
    """Structure, appearance and background scores of a transfer.

    Args:
        result (Tensor): (1, 3, H, W) output in [-1, 1].
        garment (Tensor): (1, 3, H, W) garment image.
        reference (Tensor): (1, 3, H, W) appearance reference.
        mask (Tensor, optional): (1, 1, H, W), 1 = garment; ``None`` counts
            every pixel as garment.
        extractor (ViTFeatureExtractor): the ViT used for the scores.
        true_mask (Tensor, optional): (1, 1, H, W) true garment
            silhouette; when given, the background score uses it instead
            of ``mask``, ``mask_iou`` compares ``mask`` with it and
            ``structure_selfsim_fg`` is computed.

    Returns:
        dict: ``structure_selfsim`` (MSE of the key self-similarity to the
        garment's, lower = structure kept), ``appearance_cls`` (MSE of the
        [CLS] token to the reference's, lower = closer appearance), the
        scores of :func:`pixel_metrics` and, with ``true_mask``,
        ``structure_selfsim_fg`` (the self-similarity MSE over the pairs
        of patches inside the true silhouette; ``nan`` if none is).
    """
    from mmssl.models.diffusion import key_self_similarity
    k_out, c_out = extractor(result)
    k_g, _ = extractor(garment)
    _, c_ref = extractor(reference)
    diff = (key_self_similarity(k_out) - key_self_similarity(k_g))**2
    out = dict(
        structure_selfsim=float(diff.mean()),
        appearance_cls=float(((c_out - c_ref)**2).mean()))
    if true_mask is not None:
        tok = _token_mask(true_mask, diff.shape[-1])
        out['structure_selfsim_fg'] = float(
            diff[0][tok][:, tok].mean()) if tok.any() else float('nan')
    out.update(pixel_metrics(result, garment, mask, true_mask))
    return out


def write_outputs(out_dir: str, files: Dict[str, torch.Tensor]) -> List[str]:
    """Write images all-or-nothing: into a temporary folder beside
    ``out_dir``, then moved into ``out_dir`` file by file with atomic
    renames once every picture has been encoded.

    Args:
        out_dir (str): target folder (created).
        files (dict): file name -> (3 or 1, H, W) tensor in [-1, 1], or
            a dict written as JSON.

    Returns:
        list[str]: the written paths.
    """
    import tempfile
    os.makedirs(out_dir, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix='.tmp-', dir=out_dir)
    try:
        for name, img in files.items():
            if isinstance(img, dict):
                import json
                with open(osp.join(tmp, name), 'w') as f:
                    json.dump(img, f, indent=2)
            else:
                save_image(img, osp.join(tmp, name))
        paths = []
        for name in files:
            dst = osp.join(out_dir, name)
            os.replace(osp.join(tmp, name), dst)
            paths.append(dst)
    finally:
        for f in os.listdir(tmp):
            os.remove(osp.join(tmp, f))
        os.rmdir(tmp)
    return paths
