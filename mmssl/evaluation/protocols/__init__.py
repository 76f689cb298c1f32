# Copyright (c) mmssl contributors. All rights reserved.
"""Evaluation protocols of a pretrained backbone: feature extraction, kNN /
linear probe / finetune (:func:`evaluate_backbone`), the data they read
(:mod:`.eval_data`) and the frozen dense probe. They run a model on data;
the metric math they use is in :mod:`mmssl.evaluation.functional`."""
from .dense_probe import (dense_feature_maps, dense_probe,
                          extract_dense_features, load_seg_split,
                          predict_dense, segmentation_iou, set_out_indices,
                          train_dense_probe)
from .eval_data import (EvalDataError, default_img_size, describe_data,
                        folder_frozen_eval, format_data, frozen_eval_cfg,
                        train_image_size)
from .features import (POOL_MODES, backbone_outputs, extract_features,
                       forward_backbone, get_backbone, get_data_preprocessor,
                       num_extra_tokens, pool_features, preprocess_images)
from .finetune import finetune_backbone, seeded_rng
from .frozen import PROTOCOLS, evaluate_backbone
from .loading import (build_eval_dataloader, infer_num_classes,
                      load_backbone_from_checkpoint)

__all__ = [
    'POOL_MODES', 'PROTOCOLS', 'backbone_outputs', 'build_eval_dataloader',
    'dense_feature_maps', 'dense_probe', 'evaluate_backbone',
    'extract_dense_features', 'extract_features', 'finetune_backbone',
    'forward_backbone', 'get_backbone', 'get_data_preprocessor',
    'infer_num_classes', 'load_backbone_from_checkpoint', 'load_seg_split',
    'num_extra_tokens', 'pool_features', 'predict_dense', 'preprocess_images',
    'seeded_rng', 'segmentation_iou', 'set_out_indices', 'train_dense_probe'
]
__all__ += [
    'EvalDataError', 'default_img_size', 'describe_data', 'folder_frozen_eval',
    'format_data', 'frozen_eval_cfg', 'train_image_size'
]
