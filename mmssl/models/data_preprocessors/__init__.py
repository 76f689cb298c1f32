# Copyright (c) mmssl contributors. All rights reserved.
"""Data preprocessors of mmssl's models (registered in ``MODELS``)."""
from .text import TextDataPreprocessor, pad_sequences

__all__ = ['TextDataPreprocessor', 'pad_sequences']
