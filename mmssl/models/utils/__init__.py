# Copyright (c) mmssl contributors. All rights reserved.
from .masking import (check_mask_ratio, num_visible, patchify, random_masking,
                      unpatchify, unshuffle_tokens)

__all__ = [
    'check_mask_ratio', 'num_visible', 'patchify', 'random_masking',
    'unpatchify', 'unshuffle_tokens'
]
