# Copyright (c) mmssl contributors. All rights reserved.
"""mmssl's user entry points: files (configs, checkpoints, images) in,
results out. The logic they call lives below: evaluation protocols in
:mod:`mmssl.evaluation.protocols`, the benchmark, time to accuracy and
transfer pipeline in :mod:`mmssl.analysis`, the checkpoint conversion in
:mod:`mmssl.converters`, DiffFashion in :mod:`mmssl.models.diffusion`.
Nothing in mmssl imports this package."""
from mmssl.analysis import (benchmark_configs, compare_time_to_accuracy,
                            pretrain_under_budget)
from mmssl.evaluation.protocols import (build_eval_dataloader, dense_probe,
                                        evaluate_backbone, extract_features,
                                        finetune_backbone,
                                        load_backbone_from_checkpoint)
from .convert import convert_checkpoint
from .difffashion import (DiffFashion, MaskError, WeightFileError,
                          colour_match, fashion_metrics, load_diffusion_model,
                          load_fashion_image, load_vit, load_vit_weights,
                          make_grid, pixel_metrics, save_image, write_outputs)
from .feature_extractor import MMSSLFeatureExtractor

__all__ = [
    # frozen-feature and dense evaluation of a pretrained backbone
    'load_backbone_from_checkpoint',
    'build_eval_dataloader',
    'extract_features',
    'evaluate_backbone',
    'finetune_backbone',
    'dense_probe',
    'MMSSLFeatureExtractor',
    # benchmark and time to accuracy
    'benchmark_configs',
    'pretrain_under_budget',
    'compare_time_to_accuracy',
    # checkpoint conversion
    'convert_checkpoint',
    # DiffFashion
    'DiffFashion',
    'MaskError',
    'WeightFileError',
    'colour_match',
    'fashion_metrics',
    'load_diffusion_model',
    'load_fashion_image',
    'load_vit',
    'load_vit_weights',
    'make_grid',
    'pixel_metrics',
    'save_image',
    'write_outputs'
]
