# Copyright (c) mmssl contributors. All rights reserved.
"""Pure tensor helpers of DiffFashion: schedule arithmetic, the
label-contrast garment mask and the background blend.

All images are (B, C, H, W) in [-1, 1]; ``a_t`` / ``a_prev`` are the
cumulative alpha products ``alphas_cumprod[t]`` of the current and the next
(less noisy) timestep of the sampler, as tensors broadcastable to images.
"""
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from mmssl.utils.validation import check_int

__all__ = [
    'space_timesteps', 'predict_x0', 'ddpm_posterior', 'noise_augment',
    'standardise', 'label_contrast_score', 'smooth_score', 'threshold_mask',
    'clean_mask', 'blend_background', 'renoise', 'colour_match'
]


def space_timesteps(num_train_timesteps: int, num_steps: int) -> List[int]:
    """guided-diffusion's evenly respaced timesteps, largest first.

    ``space_timesteps(1000, 200)`` gives 999, 994, ..., 5, 0 (the reference
    code's ``timestep_respacing='200'``: ``round(i * 999 / 199)``). One
    step is the noisiest timestep ``T - 1`` (guided-diffusion's stride of 1
    would take 0, the clean end).

    Args:
        num_train_timesteps (int): T of the training schedule.
        num_steps (int): number of sampler steps, 1 <= num_steps <= T.

    Returns:
        list[int]: ``num_steps`` distinct timesteps in decreasing order.
    """
    check_int(
        num_steps, 'num_steps', 'space_timesteps', maximum=num_train_timesteps)
    if num_steps == 1:
        return [num_train_timesteps - 1]
    stride = (num_train_timesteps - 1) / (num_steps - 1)
    steps = sorted({round(i * stride) for i in range(num_steps)})
    return steps[::-1]


def predict_x0(x_t: torch.Tensor, eps: torch.Tensor,
               a_t: torch.Tensor) -> torch.Tensor:
    """Clean-image estimate ``(x_t - sqrt(1 - a_t) eps) / sqrt(a_t)``.

    Args:
        x_t (Tensor): (B, C, H, W) noisy images.
        eps (Tensor): (B, C, H, W) predicted noise.
        a_t (Tensor): cumulative alpha of ``t`` (scalar tensor).

    Returns:
        Tensor: (B, C, H, W) x0 estimate.
    """
    return (x_t - (1 - a_t).sqrt() * eps) / a_t.sqrt()


def ddpm_posterior(
    x0: torch.Tensor,
    x_t: torch.Tensor,
    a_t: torch.Tensor,
    a_prev: torch.Tensor,
    var_interp: Optional[torch.Tensor] = None,
    small_floor: Optional[torch.Tensor] = None
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance of ``q(x_prev | x_t, x0)`` on a respaced schedule.

    With ``beta = 1 - a_t / a_prev``: mean ``= sqrt(a_prev) beta / (1 - a_t)
    x0 + sqrt(1 - beta) (1 - a_prev) / (1 - a_t) x_t`` and variance
    ``beta (1 - a_prev) / (1 - a_t)`` ("fixed small"), or, with
    ``var_interp`` v in [-1, 1] from a learned-variance UNet,
    ``exp(f log beta + (1 - f) log var_small)`` with ``f = (v + 1) / 2``
    (guided-diffusion's ``learned_range``).

    Args:
        x0 (Tensor): (B, C, H, W) clean estimate.
        x_t (Tensor): (B, C, H, W) current sample.
        a_t (Tensor): cumulative alpha at t (scalar tensor).
        a_prev (Tensor): cumulative alpha at the next step (1 at the end).
        var_interp (Tensor, optional): (B, C, H, W) variance output.
        small_floor (Tensor, optional): the "fixed small" variance to use
            as the lower end of the learned range instead of this step's.
            At the last step (``a_prev = 1``) that variance is 0;
            guided-diffusion takes the one of the step above there
            (``posterior_log_variance_clipped``), and so should callers.

    Returns:
        tuple[Tensor, Tensor]: mean (B, C, H, W) and variance (broadcastable
        to the mean; (B, C, H, W) with ``var_interp``).
    """
    beta = 1 - a_t / a_prev
    mean = (a_prev.sqrt() * beta /
            (1 - a_t)) * x0 + ((1 - beta).sqrt() * (1 - a_prev) /
                               (1 - a_t)) * x_t
    var = beta * (1 - a_prev) / (1 - a_t)
    if var_interp is not None:
        small = var if small_floor is None else small_floor
        log_small = torch.log(torch.clamp(small, min=1e-20))
        frac = (var_interp + 1) / 2
        var = torch.exp(frac * torch.log(beta) + (1 - frac) * log_small)
    return mean, var


def noise_augment(x0: torch.Tensor, x_t: torch.Tensor,
                  a_t: torch.Tensor) -> torch.Tensor:
    """The reference code's "noise-augmented" guidance input
    ``sqrt(1 - a_t) x0 + (1 - sqrt(1 - a_t)) x_t`` (B, C, H, W)."""
    s = (1 - a_t).sqrt()
    return s * x0 + (1 - s) * x_t


def standardise(z: torch.Tensor) -> torch.Tensor:
    """Z-score of each (H, W) map of a (B, H, W) tensor (over its pixels).

    Args:
        z (Tensor): (B, H, W).

    Returns:
        Tensor: (B, H, W) with mean 0 and (unbiased) std 1 per map; a
        constant map becomes all zeros.
    """
    flat = z.flatten(1)
    return (z - flat.mean(1).view(-1, 1, 1)) / flat.std(1).view(
        -1, 1, 1).clamp(min=1e-12)


def label_contrast_score(mu_ref: torch.Tensor,
                         mu_others: Sequence[torch.Tensor],
                         contrast: str = 'mean') -> torch.Tensor:
    """Standardised label-dependence of the denoiser, per pixel.

    ``D = sum_c (mean_y mu_y - mu_ref)^2`` (``contrast='mean'``, the
    reference: the other labels' means are averaged first) or ``D =
    mean_y sum_c (mu_y - mu_ref)^2`` (``'per_label'``: differences that
    point different ways for different labels do not cancel) is
    standardised over the pixels of each image (z-score). With unclipped x0
    the posterior mean is affine in the predicted noise, so ``D`` is
    proportional to the squared difference of the noise estimates under the
    garment label and the other labels.

    Args:
        mu_ref (Tensor): (B, C, H, W) posterior mean (or noise estimate)
            under the garment's label.
        mu_others (Sequence[Tensor]): one (B, C, H, W) tensor per unrelated
            label of the set.
        contrast (str): ``'mean'`` or ``'per_label'``.

    Returns:
        Tensor: (B, H, W) z-scores; large where the label matters.
    """
    if len(mu_others) == 0:
        raise ValueError('label_contrast_score needs at least one label')
    others = torch.stack(list(mu_others))
    if contrast == 'mean':
        d = ((others.mean(0) - mu_ref)**2).sum(1)
    elif contrast == 'per_label':
        d = ((others - mu_ref)**2).sum(2).mean(0)
    else:
        raise ValueError("contrast must be 'mean' or 'per_label', got "
                         f'{contrast!r}')
    return standardise(d)


def smooth_score(z: torch.Tensor, kernel: int = 1) -> torch.Tensor:
    """Box-filter a score map and standardise it again.

    Args:
        z (Tensor): (B, H, W) z-scores.
        kernel (int): odd box size; ``<= 1`` returns ``z`` unchanged.

    Returns:
        Tensor: (B, H, W) z-scores of the smoothed map.
    """
    if kernel <= 1:
        return z
    if kernel % 2 == 0:
        raise ValueError(f'smooth_score needs an odd kernel, got {kernel}')
    s = F.avg_pool2d(
        z.unsqueeze(1),
        kernel,
        stride=1,
        padding=kernel // 2,
        count_include_pad=False).squeeze(1)
    return standardise(s)


def threshold_mask(z: torch.Tensor, threshold: float = -0.2) -> torch.Tensor:
    """``z > threshold`` as a bool mask (B, H, W) (reference: -0.2)."""
    return z > threshold


def clean_mask(mask: torch.Tensor, kernel: int = 3) -> torch.Tensor:
    """Morphological opening then closing of a bool mask.

    Removes isolated pixels and fills pin-holes of the silhouette.

    Args:
        mask (Tensor): (B, H, W) bool.
        kernel (int): odd structuring-element size; ``<= 1`` returns the
            mask unchanged.

    Returns:
        Tensor: (B, H, W) bool.
    """
    if kernel <= 1:
        return mask
    if kernel % 2 == 0:
        raise ValueError(f'clean_mask needs an odd kernel, got {kernel}')
    pad = kernel // 2
    m = mask.float().unsqueeze(1)

    def dilate(x):
        return F.max_pool2d(x, kernel, stride=1, padding=pad)

    def erode(x):
        return 1 - F.max_pool2d(1 - x, kernel, stride=1, padding=pad)

    m = dilate(erode(m))  # opening
    m = erode(dilate(m))  # closing
    return m.squeeze(1) > 0.5


def blend_background(x: torch.Tensor, mask: torch.Tensor,
                     background: torch.Tensor) -> torch.Tensor:
    """``mask * x + (1 - mask) * background``.

    Args:
        x (Tensor): (B, C, H, W) current sample.
        mask (Tensor): (B, 1, H, W) or (B, H, W), 1 = garment (kept from
            ``x``), 0 = background.
        background (Tensor): (B, C, H, W) the noised garment image.

    Returns:
        Tensor: (B, C, H, W); equals ``background`` exactly where mask = 0.
    """
    if mask.dim() == 3:
        mask = mask.unsqueeze(1)
    mask = mask.to(x.dtype)
    return torch.where(mask > 0, mask * x + (1 - mask) * background,
                       background)


def renoise(x: torch.Tensor, beta: torch.Tensor,
            noise: torch.Tensor) -> torch.Tensor:
    """One forward step ``sqrt(1 - beta) x + sqrt(beta) noise`` (RePaint
    resampling of the first step), all (B, C, H, W)."""
    return (1 - beta).sqrt() * x + beta.sqrt() * noise


def colour_match(img: torch.Tensor,
                 reference: torch.Tensor,
                 mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Match per-channel mean and std of ``img`` to ``reference``.

    A light stand-in for the reference code's MKL colour transfer: inside
    the mask (when given) the statistics of the masked pixels are matched to
    the whole reference image (both stds over the pixels, divisor n);
    outside the image is unchanged.

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
    rsd = reference.std((2, 3), keepdim=True, correction=0)
    out = (img - mu) / sd.clamp(min=1e-5) * rsd + rmu
    return (m * out + (1 - m) * img).clamp(-1, 1)
