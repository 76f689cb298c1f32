# Copyright (c) mmssl contributors. All rights reserved.
"""The streaming ALBERT pretraining data set: the same pairs as the
in-memory one, every document once per pass over workers and ranks,
seeded epochs, a bounded buffer, clear errors, and the streaming config
through mmengine's Runner."""
import inspect
import math
import os.path as osp
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner
from text_helpers import small_corpus, small_tokenizer
from torch.utils.data import DataLoader, get_worker_info

import mmssl.datasets.albert_streaming as streaming
from mmssl.datasets import (AlbertPretrainDataset,
                            AlbertStreamingPretrainDataset,
                            SentencePieceTokenizer, iter_documents,
                            read_documents)
from mmssl.testing.resume import own_experiment_name

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(ROOT, 'configs', 'albert',
                  'albert_tiny_1xb32-lamb-20kiter-stream_embedded-text.py')
TEXT_ROOT = osp.join(ROOT, 'data', 'embedded_text')
ITEM_KEYS = ('input_ids', 'token_type_ids', 'word_starts', 'sop_label',
             'single_sentence', 'sample_idx')


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    """``(train.txt, val.txt, tokenizer)`` of the small docstring corpus."""
    folder = tmp_path_factory.mktemp('albert_stream')
    corpus = small_corpus(folder / 'corpus')['files']
    return corpus['train'], corpus['val'], small_tokenizer(folder)


def _build(files, corpus=None, **kwargs):
    kwargs.setdefault('max_seq_length', 64)
    kwargs.setdefault('truncate_long_sentences', True)
    return AlbertStreamingPretrainDataset(
        files[0] if corpus is None else corpus, files[2], **kwargs)


def _doc_tokens(files, paths):
    """``{(file index, first line): number of tokens}`` of every document."""
    tok = SentencePieceTokenizer(files[2])
    out = {}
    for index, path in enumerate(paths):
        for doc in read_documents(path, with_line_numbers=True):
            out[(index,
                 doc[0][0])] = sum(len(tok.encode(text)) for _, text in doc)
    return out


def _with_worker(item):
    info = get_worker_info()
    return (info.id if info else -1), item


def _load(ds, num_workers, persistent=False):
    """The items of one pass through a DataLoader, as (worker, item)."""
    loader = DataLoader(
        ds,
        batch_size=None,
        num_workers=num_workers,
        persistent_workers=persistent,
        collate_fn=_with_worker)
    return list(loader)


def _fake_world(monkeypatch, rank, world_size):
    monkeypatch.setattr(streaming, 'get_rank', lambda: rank)
    monkeypatch.setattr(streaming, 'get_world_size', lambda: world_size)


def _check_once_per_pass(shards, expected_tokens):
    """Every document paired in exactly one shard, and (tokens of its
    pairs <= its tokens) not twice in it."""
    owner, tokens = {}, {}
    for shard, items in shards.items():
        for item in items:
            doc = tuple(item['doc_id'])
            assert owner.setdefault(doc, shard) == shard, doc
            ids = np.asarray(item['input_ids'])
            text = ~np.isin(ids, (2, 3, 4))  # not [CLS] / [SEP] / [MASK]
            tokens[doc] = tokens.get(doc, 0) + int(text.sum())
    assert set(owner) == set(expected_tokens)
    assert all(tokens[d] <= expected_tokens[d] for d in tokens)
    # truncation to the longest item drops a few
    assert sum(tokens.values()) > 0.8 * sum(expected_tokens.values())
    return owner


# -- the pairs ----------------------------------------------------------------


@pytest.mark.parametrize('mode', ['split_tokens', 'skip'])
def test_same_items_as_albert_pretrain_dataset_without_shuffle(files, mode):
    ref = AlbertPretrainDataset(
        files[0],
        files[2],
        max_seq_length=64,
        short_seq_prob=0.3,
        single_sentence=mode,
        truncate_long_sentences=True,
        seed=3)
    expected = [ref[i] for i in range(len(ref))]
    assert len(expected) > 300
    # a buffer of the whole corpus, a small one and one document
    for buffer_docs in (10**6, 7, 1):
        items = list(
            _build(
                files,
                short_seq_prob=0.3,
                single_sentence=mode,
                seed=3,
                shuffle=False,
                buffer_docs=buffer_docs))
        assert len(items) == len(expected)
        for got, want in zip(items, expected):
            for key in ITEM_KEYS:
                np.testing.assert_array_equal(got[key], want[key], key)
    other = list(_build(files, short_seq_prob=0.3, seed=4, shuffle=False))
    assert [len(i['input_ids']) for i in other] != \
        [len(i['input_ids']) for i in expected]


def test_random_doc_takes_the_other_document_from_the_buffer(files):
    # one document in the buffer: no other one, single sentences dropped
    alone = list(_build(files, single_sentence='random_doc', buffer_docs=1))
    assert alone and not any(i['single_sentence'] for i in alone)
    mixed = list(_build(files, single_sentence='random_doc', buffer_docs=8))
    singles = [i for i in mixed if i['single_sentence']]
    assert singles and all(i['sop_label'] == 1 for i in singles)


def test_invariants_with_shuffle_and_workers(files):
    ds = _build(files, max_seq_length=48, buffer_docs=16, seed=1)
    loaded = _load(ds, num_workers=2)
    items = [item for _, item in loaded]
    assert len(items) > 400
    # a worker's k-th item is sample k * shards + shard
    for worker in (0, 1):
        idx = [i['sample_idx'] for w, i in loaded if w == worker]
        assert idx == list(range(worker, 2 * len(idx), 2))
    labels = np.array([i['sop_label'] for i in items])
    # SOP coin: 50 % within 4 standard errors
    assert abs(labels.mean() - 0.5) < 4 * 0.5 / math.sqrt(len(labels))
    for item in items:
        ids = np.asarray(item['input_ids'])
        assert len(ids) <= 48 and ids[0] == 2 and ids[-1] == 3
        assert (ids == 3).sum() == 2
    idx = [i['sample_idx'] for i in items]
    assert len(set(idx)) == len(idx)  # unique over the workers


# -- sharding -----------------------------------------------------------------


@pytest.mark.parametrize('shard_by', ['document', 'file'])
def test_two_workers_see_every_document_once(files, shard_by):
    paths = [files[0], files[1]]
    expected = _doc_tokens(files, paths)
    ds = _build(
        files,
        corpus=paths,
        max_seq_length=256,
        buffer_docs=5,
        shard_by=shard_by)
    shards = {}
    for worker, item in _load(ds, num_workers=2):
        shards.setdefault(worker, []).append(item)
    owner = _check_once_per_pass(shards, expected)
    assert set(owner.values()) == {0, 1}
    if shard_by == 'file':  # worker k reads the k-th file of the pass
        order = ds.file_order(0)
        assert all(owner[d] == order.index(d[0]) for d in owner)


def test_faked_world_size_two_sees_every_document_once(files, monkeypatch):
    expected = _doc_tokens(files, [files[0]])
    shards = {}
    for rank in (0, 1):
        _fake_world(monkeypatch, rank, 2)
        ds = _build(files, max_seq_length=256, buffer_docs=5)
        assert len(_build(files, num_samples=1001)) == 501  # per rank
        shards[(rank, -1)] = list(ds)
        # two ranks with two workers each: four shards
        for worker, item in _load(ds, num_workers=2):
            shards.setdefault((rank, worker), []).append(item)
    single = {k: v for k, v in shards.items() if k[1] == -1}
    _check_once_per_pass(single, expected)
    four = {k: v for k, v in shards.items() if k[1] != -1}
    assert len(four) == 4
    _check_once_per_pass(four, expected)


# -- seeds and epochs ---------------------------------------------------------


def _order(items):
    return [tuple(i['doc_id']) for i in items]


def _same(a, b):
    return len(a) == len(b) and all(
        np.array_equal(x['input_ids'], y['input_ids'])
        and x['sop_label'] == y['sop_label'] for x, y in zip(a, b))


def test_same_seed_same_samples_new_epoch_new_order(files):
    first = _build(files, seed=5, buffer_docs=32)
    pass0, pass1 = list(first), list(first)  # the data set counts passes
    assert _same(pass0, list(_build(files, seed=5, buffer_docs=32)))
    assert _order(pass0) != _order(pass1)
    assert sorted(set(_order(pass0))) == sorted(set(_order(pass1)))
    again = _build(files, seed=5, buffer_docs=32)
    again.set_epoch(1)
    assert _same(list(again), pass1)
    assert not _same(list(_build(files, seed=6, buffer_docs=32)), pass0)
    again.set_epoch(0)  # back to the first pass, and counting from there
    assert _same(list(again), pass0) and _same(list(again), pass1)


@pytest.mark.parametrize('persistent', [False, True])
def test_workers_count_passes(files, persistent):
    ds = _build(files, buffer_docs=16)
    loader = DataLoader(
        ds,
        batch_size=None,
        num_workers=2,
        persistent_workers=persistent,
        collate_fn=_with_worker)
    pass0, pass1 = list(loader), list(loader)
    assert _order([i for _, i in pass0]) != _order([i for _, i in pass1])
    fresh = _build(files, buffer_docs=16)
    fresh.set_epoch(1)
    again = _load(fresh, num_workers=2)
    assert [w for w, _ in again] == [w for w, _ in pass1]
    assert _same([i for _, i in again], [i for _, i in pass1])
    # the process itself and one worker count their passes apart: both
    # first passes are epoch 0
    alone = _build(files, buffer_docs=16)
    in_process = list(alone)
    one_worker = [i for _, i in _load(alone, num_workers=1)]
    assert _same(in_process, one_worker)


# -- memory -------------------------------------------------------------------


@pytest.mark.parametrize('shuffle', [False, True])
def test_buffer_never_holds_more_than_buffer_docs(files, monkeypatch, shuffle):
    sizes = []
    add = streaming._DocumentBuffer.add

    def recording_add(self, doc_id, segments):
        add(self, doc_id, segments)
        sizes.append(len(self))

    monkeypatch.setattr(streaming._DocumentBuffer, 'add', recording_add)
    ds = _build(files, buffer_docs=6, shuffle=shuffle)
    encoded = []
    encode = ds.tokenizer.encode
    ds.tokenizer.encode = lambda text: encoded.append(1) or encode(text)
    stream = iter(ds)
    next(stream)
    # lazy: the first pair needs only the first buffer_docs documents
    assert len(encoded) == 6 and max(sizes) == 6
    rest = list(stream)
    assert len(rest) > 300
    assert len(sizes) == len(read_documents(files[0]))
    assert max(sizes) == 6  # the bound, reached and never passed


# -- reading and errors -------------------------------------------------------


def test_iter_documents_numbers_lines_as_the_whole_text(tmp_path):
    text = 'a one.\r\nb two.\n\n\rc three.\x0cd\n  \n\u2028e four.\nf'
    path = tmp_path / 'c.txt'
    path.write_bytes(text.encode('utf-8'))
    docs, current = [], []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            current.append((number, line.strip()))
        elif current:
            docs, current = docs + [current], []
    docs.append(current)
    assert list(iter_documents(str(path), with_line_numbers=True)) == docs
    assert read_documents(str(path), with_line_numbers=True) == docs


def _write(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    return str(path)


def test_bad_files_are_refused_naming_file_and_line(files, tmp_path):
    missing = str(tmp_path / 'none.txt')
    with pytest.raises(FileNotFoundError, match='make_embedded_corpus') as e:
        _build(files, corpus=missing)
    assert missing in str(e.value)
    with pytest.raises(FileNotFoundError, match='no corpus file matches'):
        _build(files, corpus=str(tmp_path / 'train-*.txt'))
    empty = _write(tmp_path, 'empty.txt', b'')
    with pytest.raises(ValueError, match='is empty') as e:
        _build(files, corpus=empty)
    assert empty in str(e.value)
    blank = _write(tmp_path, 'blank.txt', b'\n  \n\n')
    with pytest.raises(ValueError, match='is empty'):  # found when read
        list(_build(files, corpus=[files[0], blank]))
    binary = _write(tmp_path, 'bin.txt', b'one two.\nthree\x00\x01\n')
    with pytest.raises(ValueError, match=r'binary .*offset 14, line 2'):
        _build(files, corpus=binary)
    latin = _write(tmp_path, 'latin.txt', b'ok.\nok.\n\ncaf\xe9.\n')
    with pytest.raises(ValueError, match=r'not UTF-8 .*line 4'):
        _build(files, corpus=latin)
    # beyond the head checked when built: found while streaming
    late = _write(tmp_path, 'late.txt',
                  b'a few words here.\nand more.\n\n' * 4000 + b'x\x00\n')
    ds = _build(files, corpus=late)
    with pytest.raises(ValueError, match=r'binary .*line 12001') as e:
        list(ds)
    assert late in str(e.value)
    with pytest.raises(ValueError, match='given twice'):
        _build(files, corpus=[files[0], files[0]])


def test_long_lines_are_refused_naming_file_and_line(files, tmp_path):
    long = _write(
        tmp_path, 'long.txt', b'short one.\nshort two.\n\nfirst.\n' +
        b' '.join([b'argument'] * 80) + b'\nlast.\n')
    ds = _build(files, corpus=long, max_line_bytes=100)
    with pytest.raises(ValueError, match='max_line_bytes=100') as e:
        list(ds)
    assert long in str(e.value) and 'line 5 ' in str(e.value)
    ds = _build(files, corpus=long, truncate_long_sentences=False)
    with pytest.raises(ValueError, match='truncate_long_sentences') as e:
        list(ds)
    assert long in str(e.value) and 'line 5 ' in str(e.value)
    assert all(len(i['input_ids']) <= 64 for i in _build(files, corpus=long))


def test_length_and_shard_errors(files, tmp_path, monkeypatch):
    with pytest.raises(TypeError, match='num_samples'):
        len(_build(files))
    assert len(_build(files, num_samples=1000)) == 1000
    with pytest.raises(ValueError, match="shard_by='document'"):
        _build(files, shard_by='file', max_documents=3)
    with pytest.raises(ValueError, match='shard_by'):
        _build(files, shard_by='line')
    # in data-loader worker 1 of 2 (faked: the errors of real workers leave
    # them to be joined when the loader is collected)
    worker = SimpleNamespace(id=1, num_workers=2)
    monkeypatch.setattr(streaming, 'get_worker_info', lambda: worker)
    with pytest.raises(ValueError, match='one file per shard'):
        list(_build(files, shard_by='file'))
    one_doc = _write(tmp_path, 'one.txt', b'one sentence here.\nand two.\n')
    with pytest.raises(ValueError, match='shard 1 of 2 .*got no document'):
        list(_build(files, corpus=one_doc))
    assert len(list(_build(files, corpus=[one_doc, files[1]]))) > 10


def test_pass_counter_slots_and_streams(files):
    """Each number of workers has its own pass-counter slots, none shared,
    all inside the counter; the three random streams of a pass differ."""
    slots = [
        streaming._slot(n, w) for n in range(1, streaming.MAX_WORKERS + 1)
        for w in range(n)
    ]
    assert streaming._slot(0, 0) == 1  # no workers: the process itself
    assert sorted(slots) == list(range(2, 2 + len(slots)))
    ds = _build(files)
    assert len(ds._passes) == 2 + len(slots)
    ds._begin_pass(streaming.MAX_WORKERS, streaming.MAX_WORKERS - 1)
    with pytest.raises(ValueError, match='num_workers=65 .* 64 workers'):
        ds._begin_pass(streaming.MAX_WORKERS + 1, 0)
    for epoch, shard in ((0, 0), (0, 1), (2, 0)):
        draws = {
            ds._generator(epoch, shard, stream).random()
            for stream in (streaming._PAIRS, streaming._SHUFFLE,
                           streaming._FILES)
        }
        assert len(draws) == 3
    # epoch 0 of one shard draws its pairs as AlbertPretrainDataset does
    assert ds._generator(0, 0, streaming._PAIRS).random() == \
        np.random.default_rng(ds.seed).random()


def test_document_buffer():
    fifo = streaming._DocumentBuffer(2, None)
    fifo.add((0, 1), ['a'])
    fifo.add((0, 5), ['b'])
    with pytest.raises(RuntimeError, match='full'):
        fifo.add((0, 9), ['c'])
    assert fifo.next_index() == 0
    fifo.remove(0)
    assert list(fifo.ids) == [(0, 5)] and list(fifo.docs) == [['b']]
    # a shuffle buffer takes any one and keeps the others
    shuffled = streaming._DocumentBuffer(3, np.random.default_rng(0))
    for k in range(3):
        shuffled.add((0, k), [k])
    taken = shuffled.next_index()
    shuffled.remove(taken)
    assert len(shuffled) == 2 and (0, taken) not in shuffled.ids
    assert [d[0] for d in shuffled.docs] == [i for _, i in shuffled.ids]


def test_file_order_and_names(files, tmp_path):
    third = _write(tmp_path, 'third.txt', b'one sentence here.\nand two.\n')
    corpus = [files[0], files[1], third]
    kept = _build(files, corpus=corpus, shuffle=False)
    assert all(kept.file_order(e) == [0, 1, 2] for e in range(8))
    mixed = _build(files, corpus=corpus)
    orders = {tuple(mixed.file_order(e)) for e in range(8)}
    assert len(orders) > 1 and all(sorted(o) == [0, 1, 2] for o in orders)
    # names relative to data_root, absolute ones as given
    rel = _build(files, corpus='third.txt', data_root=str(tmp_path))
    assert rel.files == [third]
    absolute = _build(files, corpus=[third, files[0]], data_root='/nowhere')
    assert absolute.files == [third, files[0]]
    # data_root=None (as configs may write it) is no folder
    resolve = AlbertStreamingPretrainDataset._resolve_files
    assert resolve([third], None) == [third]
    for name in ('g-b.txt', 'g-a.txt'):
        _write(tmp_path, name, b'one sentence here.\nand two.\n')
    globbed = _build(
        files, corpus=['g-*.txt', 'third.txt'], data_root=str(tmp_path))
    assert globbed.files == [
        str(tmp_path / n) for n in ('g-a.txt', 'g-b.txt', 'third.txt')
    ]
    _build(files, corpus=third, max_seq_length=5)  # [CLS] a [SEP] b [SEP]
    with pytest.raises(ValueError, match='max_seq_length'):
        _build(files, corpus=third, max_seq_length=4)
    for bad in ([], [third, 3], 7):
        with pytest.raises(ValueError, match='non-empty list'):
            _build(files, corpus=bad)


def test_a_corpus_without_pairs_is_refused(files, tmp_path):
    singles = _write(tmp_path, 'singles.txt',
                     b'only one sentence.\n\nanother single one.\n')
    with pytest.raises(ValueError, match='no sentence pairs'):
        list(_build(files, corpus=singles, single_sentence='skip'))


def test_defaults():
    embedded = inspect.signature(
        streaming.EmbeddedTextStreamingDataset).parameters
    assert (embedded['data_root'].default, embedded['split'].default,
            embedded['vocab_size'].default) == ('data/embedded_text', 'train',
                                                2000)
    params = inspect.signature(AlbertStreamingPretrainDataset).parameters
    assert {
        k: p.default
        for k, p in params.items() if k not in ('ann_file', 'tokenizer')
    } == dict(
        max_seq_length=512,
        short_seq_prob=0.1,
        single_sentence='split_tokens',
        truncate_long_sentences=False,
        buffer_docs=1000,
        shuffle=True,
        shard_by='document',
        max_line_bytes=1 << 20,
        max_documents=None,
        num_samples=None,
        seed=0,
        data_root='',
        pipeline=())


# -- the config ---------------------------------------------------------------


def test_stream_config_trains_through_the_runner(tmp_path):
    cfg = Config.fromfile(CONFIG)
    assert cfg.train_dataloader.sampler is None
    assert cfg.train_cfg.type == 'IterBasedTrainLoop'
    assert cfg.train_cfg.max_iters == 20000
    data = cfg.train_dataloader.dataset
    assert data.type == 'mmssl.EmbeddedTextStreamingDataset'
    # a small model on the first 40 documents: a pass is about 5 batches,
    # so 8 iterations restart the data loader
    data.update(data_root=TEXT_ROOT, max_documents=40, max_seq_length=64)
    cfg.train_dataloader.batch_size = 16
    cfg.val_dataloader.dataset.update(
        data_root=TEXT_ROOT, max_documents=20, max_seq_length=64)
    cfg.test_dataloader = cfg.val_dataloader
    cfg.model.backbone.update(
        embedding_size=16,
        hidden_size=32,
        num_layers=2,
        num_heads=2,
        ffn_dim=64,
        max_position=64)
    cfg.merge_from_dict({
        'work_dir': str(tmp_path),
        'train_cfg.max_iters': 8,
        'train_cfg.val_interval': 8,
        'default_hooks.checkpoint.interval': 8,
        'default_hooks.logger.interval': 1,
        'log_level': 'WARNING',
    })
    runner = Runner.from_cfg(own_experiment_name(cfg))
    runner.train()
    dataset = runner.train_dataloader.dataset
    assert type(dataset).__name__ == 'EmbeddedTextStreamingDataset'
    # one persistent worker: two passes counted, so two shuffles
    assert int(dataset._passes[streaming._slot(1, 0)]) == 2
    losses = runner.message_hub.log_scalars['train/loss_mlm'].data[0]
    assert len(losses) == 8 and np.isfinite(losses).all()
    assert osp.isfile(osp.join(str(tmp_path), 'iter_8.pth'))
    metrics = runner.val_loop.run()
    assert {'mlm_accuracy', 'sop_accuracy'} <= set(metrics)
    assert torch.isfinite(torch.tensor(list(metrics.values()))).all()
