# Copyright (c) mmssl contributors. All rights reserved.
"""A small class-conditional DDPM on diffusers parts (epsilon objective)."""
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel

from mmssl.registry import MODELS
from mmssl.utils.validation import check_int
from ..utils.masking import tensor_check

# guided-diffusion's schedule: 1000 linear betas from 1e-4 to 0.02, no
# clipping of the sample inside the scheduler
DEFAULT_DDPM_SCHEDULE = dict(
    num_train_timesteps=1000,
    beta_schedule='linear',
    beta_start=1e-4,
    beta_end=0.02,
    clip_sample=False)


def require_diffusers():
    """Import diffusers lazily (it is slow to import and optional).

    Returns:
        module: the ``diffusers`` package.

    Raises:
        ImportError: diffusers is not installed (with how to get it).
    """
    try:
        import diffusers
    except ImportError as err:  # pragma: no cover - optional dependency
        raise ImportError('mmssl.models.diffusion needs diffusers '
                          f'(pip install diffusers): {err}') from err
    return diffusers


def q_sample(x0: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor,
             alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """Noise clean images to the given timesteps (forward process).

    Args:
        x0 (Tensor): (B, C, H, W) clean images in [-1, 1].
        noise (Tensor): (B, C, H, W) standard normal noise.
        timesteps (Tensor): (B,) integer timesteps in [0, T).
        alphas_cumprod (Tensor): (T,) cumulative products of alphas.

    Returns:
        Tensor: (B, C, H, W) ``sqrt(a_t) x0 + sqrt(1 - a_t) noise``.
    """
    a = alphas_cumprod.to(x0.device, x0.dtype)[timesteps].view(-1, 1, 1, 1)
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


def ddpm_eps_loss(eps_pred: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """The simple DDPM objective: mean squared error on the noise.

    Args:
        eps_pred (Tensor): (B, C, H, W) predicted noise (the first ``C``
            output channels of the UNet).
        noise (Tensor): (B, C, H, W) the noise that was added.

    Returns:
        Tensor: scalar mean over all elements of ``(eps_pred - noise)**2``.
    """
    return F.mse_loss(eps_pred, noise)


@MODELS.register_module()
class ClassCondDDPM(BaseModel):
    """Class-conditional DDPM: diffusers ``UNet2DModel`` + ``DDPMScheduler``.

    Training draws ``t ~ U{0, T-1}`` and ``eps ~ N(0, I)`` per image, noises
    the image with the scheduler's ``alphas_cumprod`` and regresses the UNet's
    output (conditioned on the image label through ``num_class_embeds``) onto
    ``eps``. The UNet may predict 6 channels (epsilon + learned variance as
    guided-diffusion); only the first 3 enter the loss then.

    Args:
        unet (dict): keyword arguments of ``diffusers.UNet2DModel``; must set
            ``num_class_embeds``.
        scheduler (dict): keyword arguments of ``diffusers.DDPMScheduler``.
            Defaults to 1000 linear-beta steps (1e-4 .. 0.02).
        num_sample_steps (int): denoising steps of :meth:`sample` and of the
            ``predict`` mode. Defaults to 50.
        data_preprocessor (dict, optional): maps uint8 images to [-1, 1]
            and collects the labels; defaults to mmpretrain's
            ``ClsDataPreprocessor`` with mean = std = 127.5.
        init_cfg (dict, optional): mmengine initialisation config.
    """

    def __init__(self,
                 unet: dict,
                 scheduler: Optional[dict] = None,
                 num_sample_steps: int = 50,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        diffusers = require_diffusers()
        if data_preprocessor is None:
            data_preprocessor = dict(
                type='mmpretrain.ClsDataPreprocessor',
                mean=[127.5] * 3,
                std=[127.5] * 3,
                to_rgb=False)
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        unet = dict(unet)
        if not unet.get('num_class_embeds'):
            raise ValueError('ClassCondDDPM needs unet.num_class_embeds > 0')
        check_int(num_sample_steps, 'num_sample_steps', type(self).__name__)
        self.unet_cfg = unet
        self.unet = diffusers.UNet2DModel(**unet)
        sched = dict(DEFAULT_DDPM_SCHEDULE, **(scheduler or {}))
        self.scheduler_cfg = sched
        self.scheduler = diffusers.DDPMScheduler(**sched)
        self.num_classes = int(unet['num_class_embeds'])
        self.num_sample_steps = num_sample_steps
        # a buffer so that it moves with the model; not saved
        self.register_buffer(
            'alphas_cumprod',
            self.scheduler.alphas_cumprod.clone().float(),
            persistent=False)

    @property
    def num_train_timesteps(self) -> int:
        return int(self.scheduler.config.num_train_timesteps)

    def predict_noise(self, x_t: torch.Tensor, timesteps: torch.Tensor,
                      labels: torch.Tensor) -> torch.Tensor:
        """UNet output for noisy images.

        Args:
            x_t (Tensor): (B, 3, H, W) noisy images.
            timesteps (Tensor): (B,) or scalar integer timesteps.
            labels (Tensor): (B,) class indices.

        Returns:
            Tensor: (B, out_channels, H, W), epsilon in the first 3 channels.
        """
        if timesteps.dim() == 0:
            timesteps = timesteps.expand(x_t.shape[0])
        return self.unet(x_t, timesteps, class_labels=labels).sample

    def loss(
            self,
            inputs: torch.Tensor,
            labels: torch.Tensor,
            noise: Optional[torch.Tensor] = None,
            timesteps: Optional[torch.Tensor] = None
    ) -> Dict[str, torch.Tensor]:
        """Epsilon loss of a batch.

        Args:
            inputs (Tensor): (B, 3, H, W) images in [-1, 1].
            labels (Tensor): (B,) class indices.
            noise (Tensor, optional): (B, 3, H, W); drawn if ``None``.
            timesteps (Tensor, optional): (B,); drawn if ``None``.

        Returns:
            dict: ``loss`` (scalar).
        """
        B = inputs.shape[0]
        if noise is None:
            noise = torch.randn_like(inputs)
        if timesteps is None:
            timesteps = torch.randint(
                0, self.num_train_timesteps, (B, ), device=inputs.device)
        x_t = q_sample(inputs, noise, timesteps, self.alphas_cumprod)
        out = self.predict_noise(x_t, timesteps, labels)
        return dict(loss=ddpm_eps_loss(out[:, :inputs.shape[1]], noise))

    @torch.no_grad()
    def sample(self,
               labels: torch.Tensor,
               num_steps: Optional[int] = None,
               generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Ancestral DDPM sampling of images of the given classes.

        Args:
            labels (Tensor): (B,) class indices.
            num_steps (int, optional): denoising steps; defaults to
                ``num_sample_steps``.
            generator (torch.Generator, optional): for the noise.

        Returns:
            Tensor: (B, 3, H, W) images in [-1, 1].
        """
        size = self.unet.config.sample_size
        size = (size, size) if isinstance(size, int) else tuple(size)
        sched = require_diffusers().DDPMScheduler(**self.scheduler_cfg)
        sched.set_timesteps(num_steps or self.num_sample_steps)
        x = torch.randn(
            (labels.shape[0], 3) + size,
            generator=generator).to(self.alphas_cumprod.device)
        for t in sched.timesteps:
            eps = self.predict_noise(x, t.to(x.device), labels)[:, :3]
            x = sched.step(eps, t, x, generator=generator).prev_sample
        return x.clamp(-1, 1)

    def forward(self,
                inputs: torch.Tensor,
                data_samples: Optional[List] = None,
                mode: str = 'tensor') -> Union[Dict, List, torch.Tensor]:
        """``loss``: dict of losses; ``predict``: data samples holding a
        generated image (``pred_img``, (3, H, W) in [-1, 1]) of each
        sample's label; ``tensor``: the UNet output at t = 0."""
        labels = self._labels(inputs, data_samples)
        if mode == 'loss':
            return self.loss(inputs, labels)
        if mode == 'predict':
            imgs = self.sample(labels)
            for ds, img in zip(data_samples, imgs):
                ds.set_field(img, 'pred_img', dtype=torch.Tensor)
            return data_samples
        if mode == 'tensor':
            t = torch.zeros(
                inputs.shape[0], dtype=torch.long, device=inputs.device)
            return self.predict_noise(inputs, t, labels)
        raise RuntimeError(f'Invalid mode "{mode}"')

    def _labels(self, inputs: torch.Tensor,
                data_samples: Optional[Sequence]) -> torch.Tensor:
        if not data_samples:
            raise ValueError('ClassCondDDPM needs data samples with gt_label')
        labels = torch.cat([ds.gt_label.view(-1) for ds in data_samples])
        if labels.numel() != inputs.shape[0]:
            raise ValueError('ClassCondDDPM needs one label per image')

        def message() -> str:
            got = 'a label outside' if torch.compiler.is_compiling() else \
                str(labels.tolist())
            return (f'ClassCondDDPM: gt_label must lie in [0, '
                    f'{self.num_classes}) (model.unet.num_class_embeds), '
                    f'got {got}')

        # an in-graph assert under torch.compile (no host read, no break)
        tensor_check((labels >= 0) & (labels < self.num_classes), message)
        return labels.long().to(inputs.device)
