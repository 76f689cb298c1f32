# Copyright (c) mmssl contributors. All rights reserved.
import pytest

from mmssl.datasets import CharCTCVocab
from mmssl.registry import TASK_UTILS


def test_default_layout():
    vocab = CharCTCVocab()
    assert len(vocab) == 29
    assert vocab.symbols[:4] == ['<blank>', '|', 'A', 'B']
    assert vocab.symbols[-1] == "'"
    assert vocab.blank_id == 0 and vocab.word_boundary_id == 1


def test_round_trip():
    vocab = CharCTCVocab()
    text = "IT'S THE OLD HOUSE"
    ids = vocab.encode(text)
    assert ids[:5] == [10, 21, 28, 20, 1]  # I T ' S |
    assert 0 not in ids
    assert vocab.decode(ids) == text
    # blanks are dropped, boundaries at the ends and repeated ones collapse
    assert vocab.decode([0, 1, 2, 0, 1, 1, 3, 1]) == 'A B'


@pytest.mark.parametrize('text, char, pos', [('HELLO, WORLD', ',', 5),
                                             ('CAFé', 'é', 3), ('ab', 'a', 0)])
def test_bad_character(text, char, pos):
    with pytest.raises(ValueError) as err:
        CharCTCVocab().encode(text, source='audio file x.wav')
    msg = str(err.value)
    assert repr(char) in msg and f'position {pos}' in msg
    assert 'x.wav' in msg and 'vocabulary' in msg
    if char == 'a':
        assert 'upper-case' in msg


def test_decode_out_of_range():
    with pytest.raises(ValueError, match='outside'):
        CharCTCVocab().decode([29])


def test_save_and_from_file(tmp_path):
    vocab = CharCTCVocab()
    path = str(tmp_path / 'dict.ltr.txt')
    vocab.save(path)
    assert CharCTCVocab.from_file(path) == vocab
    # fairseq's dict.ltr.txt: "symbol count" lines, no blank, own order
    fair = tmp_path / 'fairseq.txt'
    fair.write_text('| 100\nE 50\nT 40\nA 30\n')
    loaded = CharCTCVocab.from_file(str(fair))
    assert loaded.symbols == ['<blank>', '|', 'E', 'T', 'A']
    assert loaded.encode('TEA EAT') == [3, 2, 4, 1, 2, 4, 3]
    bad = tmp_path / 'bad.txt'
    bad.write_text('AB 3\n')
    with pytest.raises(ValueError, match='single characters'):
        CharCTCVocab.from_file(str(bad))
    with pytest.raises(FileNotFoundError, match='missing.txt'):
        CharCTCVocab.from_file(str(tmp_path / 'missing.txt'))


def test_bad_chars_argument():
    with pytest.raises(ValueError, match='distinct'):
        CharCTCVocab(['A', 'A'])
    with pytest.raises(ValueError, match='single characters'):
        CharCTCVocab(['AB'])


def test_build_from_config():
    vocab = TASK_UTILS.build(dict(type='mmssl.CharCTCVocab'))
    assert vocab == CharCTCVocab()
    small = CharCTCVocab.build(dict(type='mmssl.CharCTCVocab', chars='|AB'))
    assert small.symbols == ['<blank>', '|', 'A', 'B']
    assert CharCTCVocab.build(None) == vocab
    assert CharCTCVocab.build(small) is small


def test_equal_only_to_a_vocabulary_of_the_same_symbols():
    from mmssl.datasets.char_vocab import CharCTCVocab
    assert CharCTCVocab() == CharCTCVocab()
    assert CharCTCVocab() != CharCTCVocab('AB')
    assert CharCTCVocab() != 'ABC' and CharCTCVocab() != None  # noqa: E711
