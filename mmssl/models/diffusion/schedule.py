# Copyright (c) mmssl contributors. All rights reserved.
"""The respaced sampling schedule of DiffFashion and its (guided) step.

Step indices ``i`` count like guided-diffusion's respaced ones: ``0`` is the
least noisy step, ``num_steps - 1`` the noisiest. Step counts of the
reference command are given for 200 respaced steps and scale with
``num_steps`` (:meth:`RespacedSchedule.scale`).
"""
from typing import Optional, Tuple

import torch

from mmssl.utils.validation import check_choice, check_int
from .ddpm import DEFAULT_DDPM_SCHEDULE, require_diffusers
from .fashion_ops import ddpm_posterior, predict_x0, space_timesteps

__all__ = ['RespacedSchedule', 'REF_STEPS']

#: the reference command's ``--timestep_respacing``
REF_STEPS = 200


class RespacedSchedule:
    """Timesteps, noise levels and the guided step of one sampler.

    Args:
        scheduler (dict, optional): ``DDPMScheduler`` / ``DDIMScheduler``
            arguments of the training schedule (default: guided-diffusion's
            1000 linear-beta steps).
        sampler (str): ``'ddpm'`` (the reference: guided-diffusion's
            respacing, ``mu' = mu - Sigma grad L``) or ``'ddim'`` (eta 0,
            diffusers' ``'leading'`` spacing, ``eps' = eps + sqrt(1 - a_t)
            grad L``).
        num_steps (int): respaced sampling steps (reference 200).
        skip (int): steps skipped at the start, of 200 (80: the start
            index is 119, timestep 597).
        blend_steps (int): steps after the start during which the
            background is pasted from the noised garment, of 200 (35).
        resample (int): how often the first step is run, re-noised in
            between (10).
        clip_x0 (bool): clip the clean estimate to [-1, 1] before the
            posterior mean of a DDPM step. mmssl's default True keeps small
            models' samples in range; the reference command samples with
            ``clip_denoised=False`` (set False for it). The guidance losses
            always see the unclipped estimate.
    """

    def __init__(self,
                 scheduler: Optional[dict] = None,
                 sampler: str = 'ddpm',
                 num_steps: int = REF_STEPS,
                 skip: int = 80,
                 blend_steps: int = 35,
                 resample: int = 10,
                 clip_x0: bool = True) -> None:
        diffusers = require_diffusers()
        check_choice(sampler, 'sampler', 'schedule', ('ddpm', 'ddim'))
        check_int(resample, 'resample', 'schedule')
        sched = dict(DEFAULT_DDPM_SCHEDULE, **(scheduler or {}))
        sched.pop('variance_type', None)
        self.sampler = sampler
        if sampler == 'ddpm':
            self.scheduler = diffusers.DDPMScheduler(**sched)
            T = self.scheduler.config.num_train_timesteps
            self.scheduler.set_timesteps(
                timesteps=space_timesteps(T, num_steps))
        else:
            self.scheduler = diffusers.DDIMScheduler(**sched)
            self.scheduler.set_timesteps(num_steps)
        self.timesteps = [int(t) for t in self.scheduler.timesteps]
        self.alphas_cumprod = self.scheduler.alphas_cumprod.float()
        n = len(self.timesteps)
        self.start = n - self.scale(skip) - 1
        if self.start < 1:
            raise ValueError(f'schedule: skip={skip} leaves no steps of {n}')
        self.blend_steps = self.scale(blend_steps)
        self.resample = int(resample)
        self.clip_x0 = bool(clip_x0)

    def __len__(self) -> int:
        return len(self.timesteps)

    def scale(self, k: int) -> int:
        """A step count ``k`` of the 200-step reference, for this schedule."""
        return int(round(k * len(self.timesteps) / REF_STEPS))

    def t_at(self, i: int) -> int:
        """Training timestep of step index ``i``."""
        return self.timesteps[len(self.timesteps) - 1 - i]

    def alpha(self, i: int) -> torch.Tensor:
        """Cumulative alpha (scalar tensor) of step ``i``; 1 below 0."""
        return self.alphas_cumprod[self.t_at(i)] if i >= 0 else \
            torch.tensor(1.0)

    def beta(self, i: int) -> torch.Tensor:
        """Beta of the respaced step from ``i`` to ``i - 1``."""
        return 1 - self.alpha(i) / self.alpha(i - 1)

    def blends(self, i: int) -> bool:
        """Whether the sample leaving step ``i`` gets the garment's
        background: the ``blend_steps`` steps after the start (reference:
        indices 84 .. 118 of 200)."""
        return self.start - self.blend_steps <= i < self.start

    def add_noise(self, x0: torch.Tensor, i: int,
                  generator: Optional[torch.Generator]) -> torch.Tensor:
        """``q_sample`` of ``x0`` (B, C, H, W) to step index ``i`` (noise
        drawn on the CPU from ``generator``)."""
        noise = torch.randn(x0.shape, generator=generator)
        return self.scheduler.add_noise(x0, noise.to(x0),
                                        torch.tensor([self.t_at(i)]))

    def step(self, x: torch.Tensor, i: int, eps: torch.Tensor,
             var_interp: Optional[torch.Tensor], grad: Optional[torch.Tensor],
             noise: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """From step ``i`` to ``i - 1``, moved by a guidance gradient.

        DDPM: posterior mean ``mu`` and variance ``Sigma`` (fixed small, or
        guided-diffusion's learned range with ``var_interp``, whose lower
        end at step 0 is the fixed small variance of step 1) of the clean
        estimate, then
        ``x_prev = mu - Sigma * grad + sqrt(Sigma) * noise`` (no noise at
        ``i = 0``). DDIM: ``eps' = eps + sqrt(1 - a_t) * grad`` and
        ``DDIMScheduler.step`` (eta 0, ``noise`` unused).

        Args:
            x (Tensor): (B, C, H, W) sample at step ``i``.
            i (int): step index.
            eps (Tensor): (B, C, H, W) predicted noise.
            var_interp (Tensor, optional): (B, C, H, W) learned-variance
                output of the UNet.
            grad (Tensor, optional): (B, C, H, W) gradient of the guidance
                energy w.r.t. ``x``.
            noise (Tensor): (B, C, H, W) standard normal noise.

        Returns:
            tuple[Tensor, Tensor]: the sample at ``i - 1`` and the clean
            estimate x0 (unclipped), both (B, C, H, W).
        """
        a_t, a_prev = self.alpha(i), self.alpha(i - 1)
        x0 = predict_x0(x, eps, a_t)
        if self.sampler == 'ddim':
            if grad is not None:
                eps = eps + (1 - a_t).sqrt() * grad
            out = self.scheduler.step(eps, self.t_at(i), x, eta=0.0)
            return out.prev_sample, x0
        x0_post = x0.clamp(-1, 1) if self.clip_x0 else x0
        floor = None
        if var_interp is not None and i == 0 and len(self) > 1:
            # guided-diffusion's clipped log variance: step 1's at step 0
            floor = ddpm_posterior(x0_post, x, self.alpha(1), a_t)[1]
        mean, var = ddpm_posterior(x0_post, x, a_t, a_prev, var_interp, floor)
        if grad is not None:
            mean = mean - var * grad
        if i == 0:
            return mean, x0
        return mean + var.sqrt() * noise, x0
