# Copyright (c) mmssl contributors. All rights reserved.
"""Necks: decoders and projection necks."""
from .d2v2_decoder import D2V2ConvDecoder2d, fill_masked
from .d2v2_decoder1d import D2V2ConvDecoder1d
from .densecl_neck import DenseCLNeckBN
from .mae_decoder import MAEPretrainDecoder, encoder_layer_at
from .mask_reconstruction_decoder import (DECODER_PRESETS,
                                          MaskReconstructionDecoder,
                                          ReconstructionMSELoss,
                                          reconstruction_loss)

__all__ = [
    'D2V2ConvDecoder2d', 'DenseCLNeckBN', 'DECODER_PRESETS',
    'MaskReconstructionDecoder', 'ReconstructionMSELoss',
    'reconstruction_loss', 'D2V2ConvDecoder1d', 'fill_masked',
    'MAEPretrainDecoder', 'encoder_layer_at'
]
