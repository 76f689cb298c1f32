# Copyright (c) mmssl contributors. All rights reserved.
"""Pretraining batches of speech without padding: every clip cropped to the
shortest clip of the batch (fairseq's ``RawAudioDataset.collater`` with
``pad=False``, the wav2vec 2.0 / data2vec 2.0 pretraining batches)."""
import torch

from mmssl.registry import MODELS
from .audio import AudioDataPreprocessor

__all__ = ['ShortestCropDataPreprocessor']


@MODELS.register_module()
class ShortestCropDataPreprocessor(AudioDataPreprocessor):
    """Crop every waveform of a batch to the shortest one, at a random start
    (``mmssl.ShortestCropDataPreprocessor``).

    Input as :class:`mmssl.AudioDataPreprocessor` (a list of ``(T_i,)``
    waveforms); output ``(B, min_i T_i)`` float32 with no padding, and each
    data sample's ``num_samples`` set to that length. The starts come from
    the global torch generator (seeded by the run, saved by
    ``mmssl.RandomStateHook``). A stacked ``(B, T)`` tensor passes as it
    is. Data2vec 2.0's student drops masked frames, so its batches must be
    rectangular; this keeps them so for clips of any length (fairseq also
    sorts clips by length into batches, which loses less audio; with random
    batches prefer a small ``batch_size``).
    """

    def forward(self, data: dict, training: bool = False) -> dict:
        waves = data.get('inputs') if isinstance(data, dict) else None
        if isinstance(waves, (list, tuple)) and waves:
            waves = [torch.as_tensor(w) for w in waves]
            size = min(int(w.shape[-1]) for w in waves)
            cropped = []
            for w in waves:
                start = int(
                    torch.randint(0, w.shape[-1] - size + 1, ()).item())
                cropped.append(w[..., start:start + size])
            data = dict(data, inputs=cropped)
            for sample in data.get('data_samples') or []:
                sample.set_field(size, 'num_samples', dtype=int)
        return super().forward(data, training)
