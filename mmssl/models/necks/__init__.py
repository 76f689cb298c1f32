# Copyright (c) mmssl contributors. All rights reserved.
"""Necks: decoders and projection necks."""
from .d2v2_decoder import D2V2ConvDecoder2d
from .densecl_neck import DenseCLNeckBN

__all__ = ['D2V2ConvDecoder2d', 'DenseCLNeckBN']
