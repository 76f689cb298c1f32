# Copyright (c) mmssl contributors. All rights reserved.
import pytest
import torch
from mmengine.dataset import pseudo_collate
from mmengine.structures import BaseDataElement

from mmssl.models import TextDataPreprocessor
from mmssl.registry import MODELS


def _batch(lengths):
    items = []
    for i, n in enumerate(lengths):
        sample = BaseDataElement(metainfo=dict(sample_idx=i))
        sample.gt_label = torch.tensor(i)
        items.append(
            dict(
                inputs=dict(
                    input_ids=torch.arange(5, 5 + n),
                    token_type_ids=torch.ones(n, dtype=torch.long)),
                data_samples=sample))
    return pseudo_collate(items)


def test_pads_to_longest_with_attention_mask():
    pre = MODELS.build(dict(type='mmssl.TextDataPreprocessor'))
    out = pre(_batch([3, 5, 1]))
    inputs = out['inputs']
    assert set(inputs) == {'input_ids', 'token_type_ids', 'attention_mask'}
    assert inputs['input_ids'].shape == (3, 5)
    assert inputs['input_ids'][0].tolist() == [5, 6, 7, 0, 0]
    assert inputs['token_type_ids'][2].tolist() == [1, 0, 0, 0, 0]
    assert inputs['attention_mask'].tolist() == [[1, 1, 1, 0, 0], [1] * 5,
                                                 [1, 0, 0, 0, 0]]
    assert all(v.dtype == torch.long for v in inputs.values())
    assert [s.sample_idx for s in out['data_samples']] == [0, 1, 2]


def test_pad_id_max_length_and_stacked_inputs():
    pre = TextDataPreprocessor(pad_token_id=7, max_length=8)
    out = pre(_batch([2, 3]))
    assert out['inputs']['input_ids'].shape == (2, 8)
    assert out['inputs']['input_ids'][0, 2:].eq(7).all()
    assert out['inputs']['token_type_ids'][0, 2:].eq(0).all()
    stacked = dict(
        inputs=dict(input_ids=torch.ones(2, 4, dtype=torch.long)),
        data_samples=None)
    out = TextDataPreprocessor()(stacked)
    assert out['inputs']['token_type_ids'].eq(0).all()
    assert out['inputs']['attention_mask'].eq(1).all()


def test_errors():
    with pytest.raises(ValueError, match='max_length=4'):
        TextDataPreprocessor(max_length=4)(_batch([2, 6]))
    with pytest.raises(ValueError, match='PackTextInputs'):
        TextDataPreprocessor()(dict(inputs=torch.ones(2, 3)))
    with pytest.raises(ValueError, match='pad_token_id'):
        TextDataPreprocessor(pad_token_id=-1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a GPU')
def test_moves_to_device():
    pre = TextDataPreprocessor().cuda()
    out = pre(_batch([2, 3]))
    assert out['inputs']['input_ids'].is_cuda
    assert out['data_samples'][0].gt_label.is_cuda


def test_one_item_batch_and_the_defaults():
    from mmssl.models.data_preprocessors.text import pad_sequences
    out = TextDataPreprocessor()(_batch([3]))
    assert out['inputs']['input_ids'].tolist() == [[5, 6, 7]]
    # pad id 0 and no fixed length by default, copies not asynchronous
    pre = TextDataPreprocessor()
    assert pre.pad_token_id == 0 and pre.max_length is None
    assert pre._non_blocking is False
    padded = pad_sequences([torch.tensor([5, 6]), torch.tensor([7])])
    assert padded.tolist() == [[5, 6], [7, 0]]
    # the same batch in training and in evaluation
    assert torch.equal(
        pre(_batch([2, 3]), True)['inputs']['input_ids'],
        pre(_batch([2, 3]))['inputs']['input_ids'])
