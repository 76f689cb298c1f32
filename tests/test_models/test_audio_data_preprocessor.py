# Copyright (c) mmssl contributors. All rights reserved.
"""Zero-padded batching of waveforms."""
import numpy as np
import pytest
import torch
from mmengine.dataset import pseudo_collate

from mmssl.datasets.transforms import PackAudioInputs
from mmssl.models.data_preprocessors import AudioDataPreprocessor
from mmssl.registry import MODELS


def test_pads_right_with_zeros():
    pre = MODELS.build(dict(type='mmssl.AudioDataPreprocessor'))
    items = [
        PackAudioInputs()(dict(audio=np.full(n, i + 1., np.float32)))
        for i, n in enumerate((5, 3, 7))
    ]
    out = pre(pseudo_collate(items))
    x = out['inputs']
    assert x.shape == (3, 7) and x.dtype == torch.float32
    for i, n in enumerate((5, 3, 7)):
        assert out['data_samples'][i].num_samples == n
        assert torch.all(x[i, :n] == i + 1) and torch.all(x[i, n:] == 0)


def test_stacked_and_errors():
    pre = AudioDataPreprocessor()
    out = pre(dict(inputs=torch.ones(2, 4, dtype=torch.float64)))
    assert out['inputs'].dtype == torch.float32
    assert out['inputs'].shape == (2, 4) and out['data_samples'] is None
    with pytest.raises(ValueError, match='1-D'):
        pre(dict(inputs=[torch.ones(2, 3)]))
    with pytest.raises(ValueError, match='empty'):
        pre(dict(inputs=[]))
    with pytest.raises(ValueError, match='PackAudioInputs'):
        pre([torch.ones(3)])


def test_one_clip_batch_and_a_dict_without_inputs():
    out = AudioDataPreprocessor()(dict(inputs=[torch.ones(3)]))
    assert out['inputs'].tolist() == [[1., 1., 1.]]
    with pytest.raises(ValueError, match='PackAudioInputs'):
        AudioDataPreprocessor()(dict(data_samples=[]))
