# Copyright (c) mmssl contributors. All rights reserved.
from test_tools.conftest import load_tool
from text_helpers import small_corpus

from mmssl.datasets import SentencePieceTokenizer

tool = load_tool('misc/train_tokenizer.py')


def test_trains_a_tokenizer(tmp_path, capsys):
    corpus = small_corpus(tmp_path / 'corpus')['files']['train']
    prefix = str(tmp_path / 'out' / 'sp')
    assert tool.main([corpus, '--out-prefix', prefix, '--vocab-size',
                      '400']) == 0
    out = capsys.readouterr().out
    assert 'training a 400-piece unigram tokenizer' in out
    assert f'wrote {prefix}.model (400 pieces)' in out
    tok = SentencePieceTokenizer(prefix + '.model')
    assert tok.vocab_size == 400 and tok.id_to_piece(4) == '[MASK]'


def test_bad_input_exits_with_a_message(tmp_path, capsys):
    empty = tmp_path / 'empty.txt'
    empty.write_text('')
    prefix = str(tmp_path / 'sp')
    assert tool.main(
        [str(empty), '--out-prefix', prefix, '--vocab-size', '100']) == 2
    err = capsys.readouterr().err
    assert err.startswith('error: ') and str(empty) in err and 'empty' in err
    assert tool.main([
        str(tmp_path / 'none.txt'), '--out-prefix', prefix, '--vocab-size',
        '100'
    ]) == 2
    assert 'does not exist' in capsys.readouterr().err
    assert tool.main(['--out-prefix', prefix, '--vocab-size', '100']) == 2
    assert 'give corpus files' in capsys.readouterr().err
    small = tmp_path / 'small.txt'
    small.write_text('a tiny corpus\n')
    assert tool.main(
        [str(small), '--out-prefix', prefix, '--vocab-size', '5000']) == 2
    assert 'lower vocab_size' in capsys.readouterr().err
