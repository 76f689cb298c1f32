# Copyright (c) mmssl contributors. All rights reserved.
"""mmssl.ShortestCropDataPreprocessor: pretraining batches cropped to the
shortest clip (no padding)."""
import torch
from mmpretrain.structures import DataSample

from mmssl.registry import MODELS


def test_batch_is_cropped_to_the_shortest_clip():
    pre = MODELS.build(dict(type='mmssl.ShortestCropDataPreprocessor'))
    waves = [torch.arange(10.), torch.arange(100., 106.), torch.arange(7.)]
    samples = [DataSample(num_samples=len(w)) for w in waves]
    torch.manual_seed(0)
    out = pre(dict(inputs=waves, data_samples=samples), True)
    batch = out['inputs']
    assert batch.shape == (3, 6) and batch.dtype == torch.float32
    assert [s.num_samples for s in out['data_samples']] == [6, 6, 6]
    assert torch.equal(batch[1], waves[1])
    for row, w in zip(batch, waves):  # a contiguous window of each clip
        start = int(row[0] - w[0])
        assert torch.equal(row, w[start:start + 6])
    stacked = torch.randn(2, 5)
    assert torch.equal(pre(dict(inputs=stacked), True)['inputs'], stacked)


def test_crop_starts_cover_every_window():
    """A clip of 10 samples cropped to 6 starts anywhere in 0 ... 4."""
    pre = MODELS.build(dict(type='mmssl.ShortestCropDataPreprocessor'))
    torch.manual_seed(1)
    starts = {
        int(
            pre(dict(
                inputs=[torch.arange(10.), torch.zeros(6)]),
                True)['inputs'][0, 0])
        for _ in range(80)
    }
    assert starts == {0, 1, 2, 3, 4}
