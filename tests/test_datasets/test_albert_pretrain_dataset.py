# Copyright (c) mmssl contributors. All rights reserved.
import numpy as np
import pytest
from text_helpers import small_corpus, small_tokenizer

from mmssl.datasets import AlbertPretrainDataset, SentencePieceTokenizer


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp('albert')
    corpus = small_corpus(folder / 'corpus')
    return corpus['files']['train'], small_tokenizer(folder)


def _build(files, **kwargs):
    kwargs.setdefault('truncate_long_sentences', True)
    return AlbertPretrainDataset(files[0], files[1], **kwargs)


def _segments(item):
    ids = np.asarray(item['input_ids'])
    seps = np.flatnonzero(ids == 3)
    return ids[1:seps[0]], ids[seps[0] + 1:seps[1]]


def _contiguous(stream, first, second):
    both = np.concatenate([first, second])
    n = len(both)
    return any(
        np.array_equal(stream[i:i + n], both)
        for i in np.flatnonzero(stream == both[0]) if i + n <= len(stream))


def test_items_structure_and_max_length(files):
    ds = _build(files, max_seq_length=64, dupe_factor=2)
    assert len(ds) > 100
    for i in range(len(ds)):
        item = ds[i]
        ids, types = item['input_ids'], item['token_type_ids']
        assert len(ids) <= 64 and len(ids) == len(types) == len(
            item['word_starts'])
        assert ids[0] == 2 and ids[-1] == 3 and (ids == 3).sum() == 2
        first_sep = int(np.flatnonzero(ids == 3)[0])
        assert (types[:first_sep + 1] == 0).all()
        assert (types[first_sep + 1:] == 1).all()
        assert item['sop_label'] in (0, 1) and item['sample_idx'] == i


def test_sop_label_is_the_order_in_the_document(files):
    ds = _build(files, max_seq_length=512, short_seq_prob=0.5)
    streams = [
        np.concatenate([s[0] for s in doc]) for doc in ds.tokenize_documents()
    ]
    labels = []
    for i in range(len(ds)):
        item = ds[i]
        if len(item['input_ids']) >= 512:  # possibly truncated
            continue
        a, b = _segments(item)
        in_order = any(_contiguous(s, a, b) for s in streams)
        swapped = any(_contiguous(s, b, a) for s in streams)
        if item['sop_label'] == 0:
            assert in_order  # A right before B in its document
        else:
            assert swapped  # the pair (B, A) was swapped to (A, B)
        labels.append(item['sop_label'])
    assert len(labels) > 100
    assert 0.4 < np.mean(labels) < 0.6


def test_same_seed_same_pairs(files):
    a, b = _build(files, seed=3), _build(files, seed=3)
    c = _build(files, seed=4)
    assert len(a) == len(b)
    assert all(
        np.array_equal(a[i]['input_ids'], b[i]['input_ids'])
        for i in range(len(a)))
    assert any(
        len(a[i]['input_ids']) != len(c[i]['input_ids'])
        or not np.array_equal(a[i]['input_ids'], c[i]['input_ids'])
        for i in range(min(len(a), len(c))))


def test_short_seq_prob(files):
    long = _build(files, max_seq_length=128, short_seq_prob=0.)
    short = _build(files, max_seq_length=128, short_seq_prob=1.)
    mean = [
        np.mean([len(d[i]['input_ids']) for i in range(len(d))])
        for d in (long, short)
    ]
    assert mean[1] < mean[0]
    assert len(short) > len(long)


def _single_sentence_corpus(tmp_path):
    path = tmp_path / 'c.txt'
    docs = [
        'the parser reads every argument of the command line',
        'a logger writes records to its handlers',
        'the json module decodes strings into objects',
        'a shlex object splits a line into tokens'
    ]
    path.write_text('\n\n'.join(docs) + '\n')
    return str(path)


def test_single_sentence_modes(files, tmp_path):
    corpus = _single_sentence_corpus(tmp_path)
    tok = SentencePieceTokenizer(files[1])
    split = AlbertPretrainDataset(corpus, tok, dupe_factor=50)
    assert all(split[i]['single_sentence'] for i in range(len(split)))
    labels = [split[i]['sop_label'] for i in range(len(split))]
    assert 0 < np.mean(labels) < 1  # a pure order label
    for i in range(len(split)):
        a, b = _segments(split[i])
        first, second = (a, b) if labels[i] == 0 else (b, a)
        sentence = np.concatenate([first, second]).tolist()
        assert any(sentence == tok.encode(line)
                   for line in open(corpus).read().split('\n\n'))
    random_doc = AlbertPretrainDataset(
        corpus, tok, single_sentence='random_doc', dupe_factor=5)
    assert len(random_doc) == 20
    assert all(random_doc[i]['sop_label'] == 1 for i in range(20))
    with pytest.raises(ValueError, match='no sentence pairs'):
        AlbertPretrainDataset(corpus, tok, single_sentence='skip')


def test_long_line_error_names_file_and_line(files, tmp_path):
    path = tmp_path / 'long.txt'
    path.write_text('short one.\nshort two.\n\nfirst.\n' +
                    ' '.join(['argument'] * 80) + '\nlast.\n')
    with pytest.raises(ValueError) as err:
        AlbertPretrainDataset(str(path), files[1], max_seq_length=32)
    msg = str(err.value)
    assert str(path) in msg and 'line 5' in msg
    assert 'truncate_long_sentences' in msg
    ds = AlbertPretrainDataset(
        str(path), files[1], max_seq_length=32, truncate_long_sentences=True)
    assert all(len(ds[i]['input_ids']) <= 32 for i in range(len(ds)))


def test_bad_corpus_and_arguments(files, tmp_path):
    empty = tmp_path / 'empty.txt'
    empty.write_text('')
    with pytest.raises(ValueError, match='is empty'):
        AlbertPretrainDataset(str(empty), files[1])
    with pytest.raises(ValueError, match='single_sentence'):
        AlbertPretrainDataset(files[0], files[1], single_sentence='nsp')
    with pytest.raises(FileNotFoundError, match='train_tokenizer.py'):
        AlbertPretrainDataset(files[0], str(tmp_path / 'none.model'))


def test_truncate_pair_keeps_each_sides_word_starts():
    """The word starts of A and B travel with their tokens through the
    concatenation and the truncation (the masker reads them), and an empty
    side stays empty."""
    from mmssl.datasets.albert_pretrain import pair_item, truncate_pair

    def seg(ids, starts):
        return np.array(ids, np.int64), np.array(starts, bool)

    a = [seg([11, 12], [1, 0]), seg([13], [1])]
    b = [seg([21, 22, 23], [0, 1, 0])]
    rng = np.random.default_rng(0)
    (ia, sa), (ib, sb) = truncate_pair(a, b, 10, rng)
    assert ia.tolist() == [11, 12, 13] and sa.tolist() == [1, 0, 1]
    assert ib.tolist() == [21, 22, 23] and sb.tolist() == [0, 1, 0]
    assert sa.dtype == sb.dtype == bool
    item = pair_item((ia, sa), (ib, sb), 0, False)
    assert item['word_starts'].tolist() == [1, 1, 0, 1, 1, 0, 1, 0, 1]
    # truncation cuts the longer side, tokens and starts together
    for seed in range(5):
        (ia, sa), (ib, sb) = truncate_pair(a, b, 4,
                                           np.random.default_rng(seed))
        assert len(ia) + len(ib) == 4 and len(ib) == 2
        full = {21: 0, 22: 1, 23: 0}
        assert sb.tolist() == [full[t] for t in ib.tolist()]
    (ia, sa), (ib, sb) = truncate_pair([], b, 10, rng)
    assert ia.shape == sa.shape == (0, ) and ib.tolist() == [21, 22, 23]
    (ia, sa), (ib, sb) = truncate_pair(a, [], 10, rng)
    assert ib.shape == sb.shape == (0, ) and sa.tolist() == [1, 0, 1]


def _reference_truncate(tokens_a, tokens_b, max_num_tokens, rng):
    """google-research/albert ``truncate_seq_pair``, on lists, with the
    same random draws."""
    tokens_a, tokens_b = list(tokens_a), list(tokens_b)
    while len(tokens_a) + len(tokens_b) > max_num_tokens:
        trunc = tokens_a if len(tokens_a) > len(tokens_b) else tokens_b
        if rng.random() < 0.5:
            del trunc[0]
        else:
            trunc.pop()
    return tokens_a, tokens_b


@pytest.mark.parametrize('len_a,len_b,limit', [(7, 3, 6), (4, 4, 5), (2, 9, 4),
                                               (5, 6, 9)])
def test_truncate_pair_is_the_references(len_a, len_b, limit):
    """Tokens go one at a time from the longer side (B on a tie), from
    its front or back with probability 1/2 each."""
    from mmssl.datasets.albert_pretrain import truncate_pair
    a = np.arange(100, 100 + len_a)
    b = np.arange(200, 200 + len_b)
    outcomes = set()
    for seed in range(20):
        ref = _reference_truncate(a, b, limit, np.random.default_rng(seed))
        (ia, _), (ib, _) = truncate_pair([(a, a > 0)], [(b, b > 0)], limit,
                                         np.random.default_rng(seed))
        assert (ia.tolist(), ib.tolist()) == ref, seed
        outcomes.add((tuple(ia), tuple(ib)))
    assert len(outcomes) > 2  # the cuts vary between fronts and backs


def test_document_segments_limit_is_max_seq_length_minus_3():
    """[CLS] A [SEP] B [SEP]: a sentence may have max_seq_length - 3
    tokens; a longer one raises or is cut into pieces of that length."""
    from mmssl.datasets.albert_pretrain import document_segments

    class Words:

        @staticmethod
        def word_starts(ids):
            return np.ones(len(ids), bool)

    lines = [(1, 'a'), (2, 'b'), (3, '')]
    encoded = [[5] * 29, [6] * 30, []]
    with pytest.raises(ValueError, match=r"line 2 of 'c.txt' has 30 tokens"):
        document_segments(lines, encoded, Words, 32, False, 'c.txt')
    segs = document_segments(lines[:1], encoded[:1], Words, 32, False, 'c')
    assert [len(s[0]) for s in segs] == [29]
    segs = document_segments(lines, encoded, Words, 32, True, 'c.txt')
    assert [len(s[0]) for s in segs] == [29, 29, 1]  # the empty one dropped
    assert [s[0][0] for s in segs] == [5, 6, 6]


def _seg(ids, starts):
    return np.array(ids, np.int64), np.array(starts, bool)


def test_split_single_sentence_cuts_at_word_starts():
    """A one-sentence chunk is cut at a word start after the first token
    (at any token of a single word); fewer than 2 tokens: no pair."""
    from mmssl.datasets.albert_pretrain import split_single_sentence
    ids = [11, 12, 13, 14, 15, 16]

    def cuts(starts):
        out = set()
        for seed in range(40):
            a, b = split_single_sentence(
                _seg(ids[:len(starts)], starts), np.random.default_rng(seed))
            assert a[0][0].tolist() + b[0][0].tolist() == ids[:len(starts)]
            assert a[0][1].tolist() + b[0][1].tolist() == starts
            out.add(len(a[0][0]))
        return out

    assert cuts([1, 0, 1, 0, 0, 1]) == {2, 5}
    assert cuts([1, 0, 0, 0]) == {1, 2, 3}  # one word: any token boundary
    assert cuts([1, 1]) == {1}
    assert split_single_sentence(_seg([11], [1]), np.random.default_rng(0)) \
        is None


def test_short_targets_and_chunks():
    """Target length: max_seq_length - 3, or with short_seq_prob an
    integer in [2, max_seq_length - 3]; sentences join a chunk until it
    reaches the target. One-token sentences make the first item exactly
    target + 3 long."""
    from mmssl.datasets.albert_pretrain import instances_from_document
    doc = [_seg([10 + i], [1]) for i in range(40)]
    lengths = set()
    for seed in range(60):
        items = instances_from_document([doc],
                                        0,
                                        np.random.default_rng(seed),
                                        max_seq_length=8,
                                        short_seq_prob=1.)
        lengths.add(len(items[0]['input_ids']))
    assert lengths == {5, 6, 7, 8}
    items = instances_from_document([doc],
                                    0,
                                    np.random.default_rng(0),
                                    max_seq_length=8,
                                    short_seq_prob=0.)
    assert [len(x['input_ids']) for x in items] == [8] * 8
    # the default length is the reference's 512
    doc = [_seg(np.arange(5, 105), np.ones(100)) for _ in range(8)]
    items = instances_from_document([doc],
                                    0,
                                    np.random.default_rng(0),
                                    short_seq_prob=0.)
    assert max(len(x['input_ids']) for x in items) == 512


def _random_doc_pair(docs, index, seed):
    """The one pair of the one-sentence document ``index`` with
    single_sentence='random_doc': (item, B's token ids)."""
    from mmssl.datasets.albert_pretrain import instances_from_document
    (item, ) = instances_from_document(
        docs, index, np.random.default_rng(seed), single_sentence='random_doc')
    return item, _segments(item)[1]


def test_random_doc_takes_b_from_another_document():
    docs = [[_seg([10, 11, 12], [1, 1, 1])], [_seg([20, 21], [1, 1])]]
    for seed in range(10):
        for index, other in ((0, 20), (1, 10)):
            item, b = _random_doc_pair(docs, index, seed)
            assert b[0] == other and item['sop_label'] == 1


def test_a_one_token_sentence_is_a_segment():
    from mmssl.datasets.albert_pretrain import document_segments

    class Words:

        @staticmethod
        def word_starts(ids):
            return np.ones(len(ids), bool)

    segs = document_segments([(1, 'a'), (2, ''), (3, 'b c')],
                             [[7], [], [8, 9]], Words, 16, False, 'c.txt')
    assert [s[0].tolist() for s in segs] == [[7], [8, 9]]


def test_random_doc_of_three_documents_is_any_other_one():
    """B comes from each of the other documents, never from its own."""
    docs = [[_seg([10 * (d + 1)] * 2, [1, 1])] for d in range(3)]
    for index in range(3):
        seen = {
            int(_random_doc_pair(docs, index, seed)[1][0]) // 10 - 1
            for seed in range(40)
        }
        assert seen == set(range(3)) - {index}


def test_dataset_defaults_and_max_documents(files):
    """max_seq_length 512, short_seq_prob 0.1 (also of the pair
    function), seed 0, one copy; the shortest item is 5 tokens
    ([CLS] a [SEP] b [SEP]); max_documents reads the first documents."""
    import inspect

    from mmssl.datasets.albert_pretrain import instances_from_document
    ds = AlbertPretrainDataset(
        files[0], files[1], truncate_long_sentences=True, lazy_init=True)
    assert (ds.max_seq_length, ds.short_seq_prob, ds.seed,
            ds.dupe_factor) == (512, 0.1, 0, 1)
    defaults = inspect.signature(instances_from_document).parameters
    assert defaults['short_seq_prob'].default == 0.1
    assert defaults['max_seq_length'].default == 512
    assert _build(files, max_seq_length=5, max_documents=2).max_seq_length \
        == 5
    with pytest.raises(ValueError, match='max_seq_length'):
        _build(files, max_seq_length=4)
    two = _build(files, max_documents=2, lazy_init=True)
    docs = two.tokenize_documents()
    assert len(docs) == 2
    all_docs = _build(files, lazy_init=True).tokenize_documents()
    assert len(all_docs) > 2
    for got, want in zip(docs, all_docs[:2]):
        assert [s[0].tolist() for s in got] == [s[0].tolist() for s in want]


def test_random_doc_of_a_single_document_skips_a_lone_sentence():
    """With no other document to draw B from, a one-sentence chunk makes
    no pair (it is not drawn from the document itself)."""
    from mmssl.datasets.albert_pretrain import instances_from_document
    docs = [[_seg([10, 11, 12], [1, 1, 1])]]
    for seed in range(5):
        assert instances_from_document(
            docs, 0, np.random.default_rng(seed),
            single_sentence='random_doc') == []


def test_a_pair_with_an_empty_side_is_dropped():
    """max_seq_length 4 (below the data set's minimum; no short target, which
    would need 2 tokens) leaves room for one token: truncation empties one
    side of every pair, and such pairs are not items; 5 tokens keep one
    token a side (a pair per sentence: each fills the target of 2)."""
    from mmssl.datasets.albert_pretrain import instances_from_document
    docs = [[_seg([10, 11], [1, 1]), _seg([20, 21], [1, 1])]]
    for seed in range(5):
        assert instances_from_document(
            docs,
            0,
            np.random.default_rng(seed),
            max_seq_length=4,
            short_seq_prob=0.) == []
        items = instances_from_document(
            docs, 0, np.random.default_rng(seed), max_seq_length=5)
        assert [len(item['input_ids']) for item in items] == [5, 5]
