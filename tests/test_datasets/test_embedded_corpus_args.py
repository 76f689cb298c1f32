# Copyright (c) mmssl contributors. All rights reserved.
"""The three datasets on the embedded corpus take its paths from one place
(mmssl.datasets.embedded_text.embedded_corpus_args)."""
import pytest

from mmssl.datasets import embedded_text
from mmssl.datasets.albert_streaming import EmbeddedTextStreamingDataset
from mmssl.datasets.d2v2_text import EmbeddedTextBlockDataset
from mmssl.datasets.embedded_text import (EmbeddedTextPretrainDataset,
                                          embedded_corpus_args)

GENERAL = {
    EmbeddedTextPretrainDataset: 'mmssl.AlbertPretrainDataset',
    EmbeddedTextBlockDataset: 'mmssl.TextBlockDataset',
    EmbeddedTextStreamingDataset: 'mmssl.AlbertStreamingPretrainDataset',
}


@pytest.fixture
def fake_corpus(monkeypatch):
    calls = []

    def ensure(root, vocab_size):
        calls.append((root, vocab_size))
        return dict(
            train=f'{root}/train.txt',
            val=f'{root}/val.txt',
            tokenizer=f'{root}/spm_{vocab_size}.model',
            pair_train='p.tsv',
            pair_dev='d.tsv')

    monkeypatch.setattr(embedded_text, 'ensure_embedded_text', ensure)
    return calls


@pytest.mark.parametrize('split', ['train', 'val'])
def test_the_split_file_and_the_tokenizer_of_the_vocabulary(
        fake_corpus, split):
    args = embedded_corpus_args('Owner', 'root', split, 300, {'seed': 1},
                                'mmssl.Any')
    assert args == dict(
        ann_file=f'root/{split}.txt', tokenizer='root/spm_300.model')
    assert fake_corpus == [('root', 300)]


@pytest.mark.parametrize('cls', list(GENERAL), ids=lambda c: c.__name__)
@pytest.mark.parametrize('key', ['ann_file', 'tokenizer'])
def test_each_dataset_refuses_its_paths_and_names_its_general_class(
        fake_corpus, cls, key):
    with pytest.raises(
            TypeError,
            match=f'^{cls.__name__}: {key} comes from data_root and '
            f'vocab_size; use {GENERAL[cls]} for another corpus$'):
        cls(data_root='root', **{key: 'x'})
    with pytest.raises(ValueError, match=f'{cls.__name__}.*split'):
        cls(data_root='root', split='dev')
    assert fake_corpus == []  # refused before anything is made
