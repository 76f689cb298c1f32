# Copyright (c) mmssl contributors. All rights reserved.
"""Token blocks for data2vec 2.0 text pretraining (mmssl.TextBlockDataset):
fairseq's stream layout, exact-length blocks (sample_break_mode none),
whole-sentence blocks (complete), and the packed batch."""
import os.path as osp
import sys

import numpy as np
import pytest
import torch
from mmengine.dataset import default_collate
from mmengine.registry import init_default_scope

from mmssl.datasets import CLS_ID, SEP_ID, make_blocks, token_stream
from mmssl.registry import DATASETS

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from text_helpers import small_corpus, small_tokenizer  # noqa: E402

DOCS = [[[10, 11, 12], [13, 14]], [[20, 21, 22, 23]], [[], [30]]]


def test_stream_layout_is_fairseqs():
    s = token_stream(DOCS).tolist()
    S = SEP_ID
    assert s == [10, 11, 12, S, 13, 14, S, S, 20, 21, 22, 23, S, S, 30, S, S]


def test_blocks_none_have_the_exact_length_and_cover_the_stream():
    blocks = make_blocks(DOCS, 5, 'none')
    stream = token_stream(DOCS)
    assert len(blocks) == len(stream) // 4
    assert all(len(b) == 5 and b[0] == CLS_ID for b in blocks)
    body = np.concatenate([b[1:] for b in blocks])
    assert np.array_equal(body, stream[:len(body)])


def test_blocks_complete_keep_sentences_whole():
    blocks = make_blocks(DOCS, 8, 'complete')
    assert all(len(b) <= 8 and b[0] == CLS_ID for b in blocks)
    assert blocks[0].tolist() == [CLS_ID, 10, 11, 12, SEP_ID, 13, 14, SEP_ID]
    assert blocks[1].tolist() == [CLS_ID, 20, 21, 22, 23, SEP_ID, 30, SEP_ID]
    # a sentence longer than a block is cut into pieces
    long = make_blocks([[list(range(5, 25))]], 8, 'complete')
    assert [len(b) for b in long] == [8, 8, 8]


@pytest.fixture(scope='module')
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp('blocks')
    tok = small_tokenizer(root)
    return small_corpus(root / 'corpus')['files'], tok


def test_dataset_packs_rectangular_batches(corpus):
    files, tok = corpus
    init_default_scope('mmpretrain')
    ds = DATASETS.build(
        dict(
            type='mmssl.TextBlockDataset',
            ann_file=files['train'],
            tokenizer=tok,
            tokens_per_sample=64,
            pipeline=[dict(type='PackInputs', input_key='input_ids')]))
    assert len(ds) > 10
    batch = default_collate([ds[i] for i in range(4)])
    assert batch['inputs'].shape == (4, 64)
    assert batch['inputs'].dtype == torch.long
    assert (batch['inputs'][:, 0] == CLS_ID).all()
    raw = ds.get_data_info(0)
    assert raw['word_starts'].shape == (64, )
    complete = DATASETS.build(
        dict(
            type='mmssl.TextBlockDataset',
            ann_file=files['train'],
            tokenizer=tok,
            tokens_per_sample=64,
            sample_break_mode='complete'))
    lengths = [len(complete[i]['input_ids']) for i in range(20)]
    assert max(lengths) <= 64 and min(lengths) < 64


def test_bad_settings_are_named(corpus):
    files, tok = corpus
    with pytest.raises(ValueError, match='sample_break_mode'):
        DATASETS.build(
            dict(
                type='mmssl.TextBlockDataset',
                ann_file=files['train'],
                tokenizer=tok,
                sample_break_mode='eos'))
    with pytest.raises(ValueError, match='tokens_per_sample'):
        DATASETS.build(
            dict(
                type='mmssl.TextBlockDataset',
                ann_file=files['train'],
                tokenizer=tok,
                tokens_per_sample=10**7))
