# Copyright (c) mmssl contributors. All rights reserved.
"""Data preprocessors of mmssl's models (registered in ``MODELS``)."""
from .audio import AudioDataPreprocessor
from .text import TextDataPreprocessor, pad_sequences

__all__ = ['TextDataPreprocessor', 'pad_sequences', 'AudioDataPreprocessor']

from .audio_crop import ShortestCropDataPreprocessor  # noqa: E402

__all__ += ['ShortestCropDataPreprocessor']
