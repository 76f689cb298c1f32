# Copyright (c) mmssl contributors. All rights reserved.
"""Data transforms (registered in ``mmssl.registry.TRANSFORMS``).

Steps that belong to one data set live with it (the fashion-pair loading
and packing in :mod:`mmssl.datasets.fashion_pairs`) and are exported by
:mod:`mmssl.datasets`.
"""
from .audio import (EncodeTranscript, LoadAudio, NormalizeAudio,
                    PackAudioInputs, RandomAudioCrop, normalize_audio,
                    read_audio)
from .masking import InverseBlockMaskGenerator, RandomMaskGenerator
from .text import (TEXT_SPECIAL_IDS, NgramMLMMask, PackTextInputs, mask_budget,
                   ngram_mask_spans)

__all__ = [
    'InverseBlockMaskGenerator', 'RandomMaskGenerator', 'NgramMLMMask',
    'PackTextInputs', 'ngram_mask_spans', 'mask_budget', 'TEXT_SPECIAL_IDS',
    'LoadAudio', 'RandomAudioCrop', 'NormalizeAudio', 'EncodeTranscript',
    'PackAudioInputs', 'read_audio', 'normalize_audio'
]
