# Copyright (c) mmssl contributors. All rights reserved.
"""Batching of speech items: right zero-padding and device transfer."""
from typing import List, Optional

import torch
from mmengine.model import BaseDataPreprocessor

from mmssl.registry import MODELS

__all__ = ['AudioDataPreprocessor']


@MODELS.register_module()
class AudioDataPreprocessor(BaseDataPreprocessor):
    """Stack waveforms into one zero-padded batch
    (``mmssl.AudioDataPreprocessor``).

    Input (after mmengine's ``pseudo_collate`` of
    :class:`mmssl.PackAudioInputs` items)::

        {'inputs': [FloatTensor (T_i,)] * B,
         'data_samples': [DataSample(num_samples=T_i, ...)] * B}

    Output (``model.forward(**output)``)::

        {'inputs': FloatTensor (B, T_max),  # zeros after each T_i
         'data_samples': [DataSample] * B}  # unchanged, on the device

    The valid length of row ``i`` is ``data_samples[i].num_samples``.
    A stacked ``(B, T)`` tensor (``default_collate``) passes as it is.
    """

    def forward(self, data: dict, training: bool = False) -> dict:
        if not isinstance(data, dict) or 'inputs' not in data:
            raise ValueError(
                'AudioDataPreprocessor: the batch must be {"inputs": '
                '[waveform (T,)] * B, "data_samples": [...]} as packed by '
                'mmssl.PackAudioInputs')
        waves = data['inputs']
        if isinstance(waves, torch.Tensor):
            if waves.dim() != 2:
                raise ValueError('AudioDataPreprocessor: stacked inputs must '
                                 f'be (B, T), got {tuple(waves.shape)}')
            batch = waves.float()
        else:
            waves = [torch.as_tensor(w) for w in waves]
            if not waves:
                raise ValueError('AudioDataPreprocessor: empty batch')
            for w in waves:
                if w.dim() != 1:
                    raise ValueError(
                        'AudioDataPreprocessor: each waveform must be 1-D '
                        f'(T,), got shape {tuple(w.shape)}')
            batch = waves[0].new_zeros(
                (len(waves), max(len(w) for w in waves)), dtype=torch.float32)
            for i, w in enumerate(waves):
                batch[i, :len(w)] = w
        samples: Optional[List] = data.get('data_samples')
        return self.cast_data(dict(inputs=batch, data_samples=samples))
