# Copyright (c) mmssl contributors. All rights reserved.
"""Building blocks shared by several algorithms: masking bookkeeping, EMA
teachers, gathers across processes, split batch norm, adversarial noisy
masking and label quality."""
from .anm import (AdversarialNoisyMasking, ANMOutput, activation_map, box_mask,
                  box_sizes, erase, mask_ratio, peak_locations, place_boxes,
                  rectangles, soften_labels)
from .attention import (UnbindMultiheadAttention, scaled_dot_product_attention,
                        unbind_qkv_attention)
from .channels_last import conv1d_channels_last
from .ctc import ctc_greedy_decode
from .dist import (all_gather_with_grad, concat_all_gather,
                   concat_all_gather_with_grad)
from .drop_path import python_drop_path_rates
from .ema import LinearAnnealEMA, annealed_decay
from .label_quality import auroc, gmm_label_quality, normalise_losses
from .masking import (check_index_range, check_mask_ratio, check_token_ids,
                      gather_tokens, inverse_block_mask, kept_ids, mask_to_ids,
                      masking_ids, num_visible, patch_mean_var, patchify,
                      pixel_targets, random_mask, random_masking, removed_ids,
                      tensor_check, unpatchify, unshuffle_tokens,
                      visible_count)
from .patch_embed import embed_patches_at, patch_columns
from .poslabel import (abs_pos_labels, full_grid_ids, grid_coords,
                       num_rel_classes, rel_pos_label_matrix, rel_pos_labels,
                       sample_pairs, window_pairs)
from .span_masking import SpanMasker, block_span_mask, span_mask
from .split_bn import SplitBatchNorm
from .subtuning import (GreedyResult, block_names, greedy_select, in_blocks,
                        resolve_blocks, selectable_blocks)
from .token_maskers import RandomTokenMasker

__all__ = [
    'conv1d_channels_last', 'python_drop_path_rates', 'check_mask_ratio',
    'num_visible', 'patchify', 'patch_mean_var', 'pixel_targets',
    'random_masking', 'unpatchify', 'unshuffle_tokens', 'LinearAnnealEMA',
    'annealed_decay', 'gather_tokens', 'inverse_block_mask', 'kept_ids',
    'mask_to_ids', 'random_mask', 'all_gather_with_grad', 'concat_all_gather',
    'concat_all_gather_with_grad', 'SplitBatchNorm', 'abs_pos_labels',
    'full_grid_ids', 'grid_coords', 'num_rel_classes', 'rel_pos_label_matrix',
    'rel_pos_labels', 'sample_pairs', 'window_pairs', 'GreedyResult',
    'block_names', 'greedy_select', 'in_blocks', 'resolve_blocks',
    'selectable_blocks', 'AdversarialNoisyMasking', 'ANMOutput',
    'activation_map', 'box_mask', 'box_sizes', 'erase', 'mask_ratio',
    'peak_locations', 'place_boxes', 'rectangles', 'soften_labels', 'auroc',
    'gmm_label_quality', 'normalise_losses', 'RandomTokenMasker',
    'ctc_greedy_decode', 'SpanMasker', 'block_span_mask', 'span_mask',
    'tensor_check', 'visible_count', 'check_token_ids', 'check_index_range',
    'UnbindMultiheadAttention', 'unbind_qkv_attention',
    'scaled_dot_product_attention', 'masking_ids', 'removed_ids',
    'embed_patches_at', 'patch_columns'
]
