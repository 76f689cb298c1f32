# Copyright (c) mmssl contributors. All rights reserved.
from .features import (build_eval_dataloader, extract_features,
                       infer_num_classes, load_backbone_from_checkpoint,
                       pool_features)
from .finetune_eval import finetune_backbone, seeded_rng
from .frozen_eval import evaluate_backbone

__all__ = [
    'extract_features', 'pool_features', 'build_eval_dataloader',
    'infer_num_classes', 'load_backbone_from_checkpoint', 'finetune_backbone',
    'seeded_rng', 'evaluate_backbone'
]

from .benchmark import (  # noqa: E402
    benchmark_configs, count_train_flops, machine_info, measure_matmul_peak)

__all__ += [
    'benchmark_configs', 'count_train_flops', 'machine_info',
    'measure_matmul_peak'
]

from .convert import (  # noqa: E402
    ConversionError, check_backbone_state, convert_checkpoint,
    convert_state_dict, detect_arch)

__all__ += [
    'ConversionError', 'check_backbone_state', 'convert_checkpoint',
    'convert_state_dict', 'detect_arch'
]

from .difffashion import (DiffFashion, MaskError,  # noqa: E402
                          WeightFileError, colour_match, fashion_metrics,
                          load_diffusion_model, load_fashion_image, load_vit,
                          make_grid, save_image, write_outputs)

__all__ += [
    'DiffFashion', 'MaskError', 'WeightFileError', 'colour_match',
    'fashion_metrics', 'load_diffusion_model', 'load_fashion_image',
    'load_vit', 'make_grid', 'save_image', 'write_outputs'
]

from .difffashion import load_vit_weights, pixel_metrics  # noqa: E402

__all__ += ['load_vit_weights', 'pixel_metrics']

from .dense_probe import (dense_probe, extract_dense_features,  # noqa: E402
                          segmentation_iou, train_dense_probe)

__all__ += [
    'dense_probe', 'extract_dense_features', 'segmentation_iou',
    'train_dense_probe'
]
