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


def test_empty_stream():
    stream = token_stream([])
    assert stream.shape == (0, ) and stream.dtype == np.int64


def _build(files, tok, **kw):
    return DATASETS.build(
        dict(
            type='mmssl.TextBlockDataset',
            ann_file=files['train'],
            tokenizer=tok,
            **kw))


def test_blocks_follow_the_documents_and_the_defaults(corpus):
    """The dataset's blocks are make_blocks of each document's sentences
    encoded on their own (one [SEP] more at every document end); 512
    tokens by default; the shortest block is [CLS] + 1 token;
    max_documents reads the first documents only."""
    from mmssl.datasets import build_tokenizer, read_documents
    files, tok = corpus
    tokenizer = build_tokenizer(tok)
    docs = [[tokenizer.encode([s])[0] for s in doc]
            for doc in read_documents(files['train'])]
    ds = _build(files, tok, tokens_per_sample=64)
    expected = make_blocks(docs, 64)
    assert len(ds) == len(expected)
    for i in (0, len(ds) // 2, len(ds) - 1):
        assert np.array_equal(ds.get_data_info(i)['input_ids'], expected[i])
    default = _build(files, tok)
    assert default.tokens_per_sample == 512
    assert len(default.get_data_info(0)['input_ids']) == 512
    two = _build(files, tok, tokens_per_sample=2, max_documents=3)
    assert len(two) == len(token_stream(docs[:3]))
    assert all(len(two.get_data_info(i)['input_ids']) == 2 for i in (0, 5))
    with pytest.raises(ValueError, match='tokens_per_sample'):
        _build(files, tok, tokens_per_sample=1)


def test_tokenizer_found_under_data_root(corpus):
    files, tok = corpus
    folder, name = osp.split(tok)
    ds = _build(
        dict(train=osp.abspath(files['train'])), name, data_root=folder)
    assert ds.tokenizer.model_file == tok


def test_embedded_blocks_and_their_defaults():
    root = osp.join(
        osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'data',
        'embedded_text')
    init_default_scope('mmpretrain')
    ds = DATASETS.build(
        dict(
            type='mmssl.EmbeddedTextBlockDataset',
            data_root=root,
            tokens_per_sample=128))
    assert ds.tokenizer.vocab_size == 2000
    assert ds.ann_file == osp.join(root, 'train.txt')
    val = DATASETS.build(
        dict(
            type='mmssl.EmbeddedTextBlockDataset',
            data_root=root,
            split='val',
            tokens_per_sample=128))
    assert val.ann_file == osp.join(root, 'val.txt') and len(val) < len(ds)
    with pytest.raises(TypeError, match='ann_file comes from data_root'):
        DATASETS.build(
            dict(
                type='mmssl.EmbeddedTextBlockDataset',
                data_root=root,
                ann_file='x.txt'))
