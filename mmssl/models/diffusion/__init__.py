# Copyright (c) mmssl contributors. All rights reserved.
"""Diffusion models and DiffFashion (diffusers is imported on first use).

=================  ==========================================================
``ddpm``           ``ClassCondDDPM``: the class-conditional denoiser
``fashion_ops``    pure tensor helpers: respacing, x0 / posterior, mask
                   scores, blend, re-noising, colour matching
``schedule``       ``RespacedSchedule``: timesteps and the guided step
``vit_guidance``   ViT keys / [CLS] and the guidance losses
``mask``           ``LabelContrastMaskGenerator``: the automatic mask
``editor``         ``DiffFashionEditor``: the sampler (mask + transfer)
``weights``        loading and packing the two networks' weights
=================  ==========================================================
"""
from .ddpm import q_sample  # noqa: F401
from .ddpm import ClassCondDDPM, ddpm_eps_loss, require_diffusers
from .editor import DiffFashionEditor  # noqa: F401
from .fashion_ops import clean_mask  # noqa: F401
from .fashion_ops import (blend_background, colour_match, ddpm_posterior,
                          label_contrast_score, noise_augment, predict_x0,
                          renoise, smooth_score, space_timesteps, standardise,
                          threshold_mask)
from .mask import LabelContrastMaskGenerator, MaskError  # noqa: F401
from .schedule import REF_STEPS, RespacedSchedule  # noqa: F401
from .vit_guidance import DEFAULT_LOSS_WEIGHTS  # noqa: F401
from .vit_guidance import (ViTFeatureExtractor, check_loss_weights,
                           fashion_guidance_loss, key_self_similarity,
                           patch_nce_loss, vit_input_size)
from .weights import load_diffusion_model  # noqa: F401
from .weights import (WeightFileError, load_vit, load_vit_weights,
                      pack_editor_checkpoint)

__all__ = [
    'ClassCondDDPM', 'ddpm_eps_loss', 'q_sample', 'require_diffusers',
    'blend_background', 'clean_mask', 'colour_match', 'ddpm_posterior',
    'label_contrast_score', 'noise_augment', 'predict_x0', 'renoise',
    'smooth_score', 'space_timesteps', 'standardise', 'threshold_mask',
    'DEFAULT_LOSS_WEIGHTS', 'ViTFeatureExtractor', 'check_loss_weights',
    'fashion_guidance_loss', 'key_self_similarity', 'patch_nce_loss',
    'vit_input_size', 'REF_STEPS', 'RespacedSchedule',
    'LabelContrastMaskGenerator', 'MaskError', 'DiffFashionEditor',
    'WeightFileError', 'load_diffusion_model', 'load_vit', 'load_vit_weights',
    'pack_editor_checkpoint'
]
