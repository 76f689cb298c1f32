# Copyright (c) mmssl contributors. All rights reserved.
import filecmp
import os.path as osp
import pickle

import numpy as np
import pytest
from text_helpers import SMALL_VOCAB, small_corpus, small_tokenizer

from mmssl.datasets import (SPECIAL_TOKENS, SentencePieceTokenizer,
                            build_tokenizer, check_vocab_size,
                            train_sentencepiece)


@pytest.fixture(scope='module')
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp('tok')


@pytest.fixture(scope='module')
def tok(folder):
    return SentencePieceTokenizer(small_tokenizer(folder))


def test_special_ids_are_exact(tok):
    assert tok.vocab_size == len(tok) == SMALL_VOCAB
    for piece, idx in SPECIAL_TOKENS.items():
        assert tok.id_to_piece(idx) == piece
        assert tok.piece_to_id(piece) == idx
    assert (tok.pad_id, tok.unk_id, tok.cls_id, tok.sep_id,
            tok.mask_id) == (0, 1, 2, 3, 4)
    # no bos / eos: plain text never encodes to a special id but [MASK]
    ids = tok.encode('Return the parser. It reads [MASK] lines.')
    assert 4 in ids and not {0, 2, 3} & set(ids)


def test_round_trip(tok):
    text = 'Return a list of the arguments; the parser reads them.'
    ids = tok.encode(text)
    assert tok.decode(ids) == text.lower()  # the model folds case
    batch = tok.encode([text, 'another line'])
    assert batch[0] == ids and tok.decode(batch[1]) == 'another line'


def test_word_starts(tok):
    ids = tok.encode('formatting helpers, unittest')
    pieces = [tok.id_to_piece(i) for i in ids]
    starts = tok.word_starts(ids)
    assert starts.dtype == bool and len(starts) == len(ids)
    for piece, start in zip(pieces, starts):
        assert start == (piece.startswith('\u2581') or piece == ',')
    assert tok.word_starts(list(SPECIAL_TOKENS.values())).all()


def test_same_corpus_and_seed_same_vocab(folder, tmp_path):
    corpus = small_corpus(folder / 'corpus')['files']['train']
    a = train_sentencepiece(corpus, str(tmp_path / 'a' / 'sp'), 300, seed=1)
    b = train_sentencepiece(corpus, str(tmp_path / 'b' / 'sp'), 300, seed=1)
    assert filecmp.cmp(
        a.replace('.model', '.vocab'),
        b.replace('.model', '.vocab'),
        shallow=False)
    ta, tb = SentencePieceTokenizer(a), SentencePieceTokenizer(b)
    assert [ta.id_to_piece(i)
            for i in range(300)] == [tb.id_to_piece(i) for i in range(300)]


def test_pickles(tok):
    copy = pickle.loads(pickle.dumps(tok))
    assert copy.encode('the parser') == tok.encode('the parser')
    assert np.array_equal(copy.word_start_table, tok.word_start_table)


def test_missing_file_names_path_and_tool(tmp_path):
    path = str(tmp_path / 'nothing.model')
    with pytest.raises(FileNotFoundError) as err:
        SentencePieceTokenizer(path)
    assert path in str(err.value)
    assert 'tools/misc/train_tokenizer.py' in str(err.value)


def test_not_a_model_or_wrong_layout(folder, tmp_path):
    bad = tmp_path / 'bad.model'
    bad.write_bytes(b'not a model')
    with pytest.raises(ValueError, match='not a SentencePiece model'):
        SentencePieceTokenizer(str(bad))
    import sentencepiece as spm
    corpus = small_corpus(folder / 'corpus')['files']['train']
    spm.SentencePieceTrainer.train(
        input=corpus,
        model_prefix=str(tmp_path / 'plain'),
        vocab_size=200,
        minloglevel=2)
    with pytest.raises(ValueError, match="expected '<pad>'"):
        SentencePieceTokenizer(str(tmp_path / 'plain.model'))


def test_check_vocab_size(tok):
    check_vocab_size(tok, SMALL_VOCAB)
    with pytest.raises(ValueError) as err:
        check_vocab_size(tok, 30000, where='model.backbone.vocab_size')
    msg = str(err.value)
    assert tok.model_file in msg and '30000' in msg
    assert str(SMALL_VOCAB) in msg and 'model.backbone.vocab_size' in msg


def test_bad_training_input(tmp_path):
    with pytest.raises(FileNotFoundError, match='does not exist'):
        train_sentencepiece(str(tmp_path / 'x.txt'), str(tmp_path / 'p'), 50)
    empty = tmp_path / 'empty.txt'
    empty.write_text('')
    with pytest.raises(ValueError, match='is empty'):
        train_sentencepiece(str(empty), str(tmp_path / 'p'), 50)
    tiny = tmp_path / 'tiny.txt'
    tiny.write_text('a b c\n')
    with pytest.raises(ValueError, match='lower vocab_size'):
        train_sentencepiece(str(tiny), str(tmp_path / 'p'), 5000)


def test_build_looks_under_data_root(folder, tmp_path, monkeypatch):
    """A path not found as given is looked up under data_root; one found as
    given (relative to the working folder) is kept; a dict or an instance
    is built as it is; anything else is refused."""
    path = small_tokenizer(folder)
    base, name = osp.split(path)
    assert build_tokenizer(name, data_root=base).model_file == path
    other = tmp_path / 'root'
    other.mkdir()
    (other / name).write_text('not a sentencepiece model')
    monkeypatch.chdir(base)
    assert build_tokenizer(name, data_root=str(other)).vocab_size == \
        SMALL_VOCAB
    assert build_tokenizer(
        dict(model_file=path), data_root=str(other)).vocab_size == SMALL_VOCAB
    tok = build_tokenizer(path)
    assert build_tokenizer(tok, data_root=str(other)) is tok
    with pytest.raises(ValueError, match='tokenizer must be the path'):
        build_tokenizer(3)
    with pytest.raises(FileNotFoundError) as err:
        build_tokenizer('nope.model', data_root=str(other))
    assert "'nope.model' is neither a file nor one under data_root" in str(
        err.value) and 'train_tokenizer.py' in str(err.value)


class _FakeSpm:
    """sentencepiece stood in for: records the training call; a processor
    with ``size`` pieces named by ``pieces``."""

    def __init__(self, size=0, pieces=()):
        self.calls, self.seeds = [], []
        self.size, self.pieces = size, list(pieces)
        fake = self

        class Trainer:

            @staticmethod
            def train(**kwargs):
                fake.calls.append(kwargs)

        class Processor:

            def Load(self, path):
                pass

            def GetPieceSize(self):
                return fake.size

            def IdToPiece(self, idx):
                return fake.pieces[idx]  # IndexError past the end

        self.SentencePieceTrainer = Trainer
        self.SentencePieceProcessor = Processor

    def set_random_generator_seed(self, seed):
        self.seeds.append(seed)


def test_training_options_and_defaults(tmp_path, monkeypatch):
    from mmssl.datasets import tokenizer
    fake = _FakeSpm()
    monkeypatch.setattr(tokenizer, '_spm', lambda: fake)
    corpus = tmp_path / 'c.txt'
    corpus.write_text('a b c\n')
    prefix = str(tmp_path / 'out' / 'spm')
    # the smallest vocabulary: the 5 special pieces and one more
    assert train_sentencepiece(str(corpus), prefix, 6) == prefix + '.model'
    call = fake.calls[0]
    assert fake.seeds == [0]
    assert call['vocab_size'] == 6 and call['input'] == [str(corpus)]
    assert (call['max_sentence_length'], call['shuffle_input_sentence'],
            call['input_sentence_size'], call['num_threads'],
            call['minloglevel']) == (8192, False, 0, 1, 2)
    assert (call['pad_id'], call['unk_id'], call['bos_id'],
            call['eos_id']) == (0, 1, -1, -1)
    assert call['user_defined_symbols'] == ['[CLS]', '[SEP]', '[MASK]']
    assert call['normalization_rule_name'] == 'nmt_nfkc_cf'
    train_sentencepiece(
        str(corpus), prefix, 6, lower_case=False, seed=3, num_threads=4)
    assert fake.seeds[-1] == 3
    assert fake.calls[-1]['normalization_rule_name'] == 'nmt_nfkc'
    assert fake.calls[-1]['num_threads'] == 4  # options override
    with pytest.raises(
            ValueError, match='vocab_size must be an integer >= '
            '6'):
        train_sentencepiece(str(corpus), prefix, 5)


def test_a_model_with_fewer_pieces_than_the_special_ids(tmp_path, monkeypatch):
    from mmssl.datasets import tokenizer
    fake = _FakeSpm(3, ['<pad>', '<unk>', '[CLS]'])
    monkeypatch.setattr(tokenizer, '_spm', lambda: fake)
    model = tmp_path / 'short.model'
    model.write_bytes(b'x')
    with pytest.raises(
            ValueError, match=r'has None at id 3, expected '
            r"'\[SEP\]'"):
        SentencePieceTokenizer(str(model))


def test_decode_keeps_unknown_pieces_and_drops_the_other_specials(tok):
    ids = tok.encode('the parser reads lines')
    assert tok.decode([tok.cls_id] + ids + [tok.sep_id, tok.pad_id]) == \
        tok.sp.DecodeIds(ids)
    assert tok.decode(ids + [tok.unk_id]) == tok.sp.DecodeIds(
        ids + [tok.unk_id]) != tok.sp.DecodeIds(ids)
