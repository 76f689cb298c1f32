# Copyright (c) mmssl contributors. All rights reserved.
"""Diffusion models and DiffFashion's building blocks (needs diffusers)."""
from .ddpm import (ClassCondDDPM, ddpm_eps_loss, q_sample,  # noqa: F401
                   require_diffusers)
from .fashion_ops import (blend_background, clean_mask,  # noqa: F401
                          ddpm_posterior, label_contrast_score, noise_augment,
                          predict_x0, renoise, smooth_score,
                          space_timesteps, threshold_mask)
from .vit_guidance import (DEFAULT_LOSS_WEIGHTS,  # noqa: F401
                           ViTFeatureExtractor, fashion_guidance_loss,
                           key_self_similarity, patch_nce_loss)
from .editor import (DiffFashionEditor,  # noqa: F401
                     LabelContrastMaskGenerator, pack_editor_checkpoint)

__all__ = [
    'ClassCondDDPM', 'ddpm_eps_loss', 'q_sample', 'require_diffusers',
    'blend_background', 'clean_mask', 'ddpm_posterior',
    'label_contrast_score', 'noise_augment', 'predict_x0', 'renoise',
    'smooth_score', 'space_timesteps', 'threshold_mask',
    'DEFAULT_LOSS_WEIGHTS',
    'ViTFeatureExtractor', 'fashion_guidance_loss', 'key_self_similarity',
    'patch_nce_loss', 'DiffFashionEditor', 'LabelContrastMaskGenerator',
    'pack_editor_checkpoint'
]
