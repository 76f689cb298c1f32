# Copyright (c) mmssl contributors. All rights reserved.
"""The embedded speech corpus and the speech data sets."""
import os.path as osp
import sys

import numpy as np
import pytest
import soundfile
from speech_helpers import SMALL_SIZES, small_speech_corpus

from mmssl.datasets import (SPEECH_SPLITS, CharCTCVocab, EmbeddedSpeechDataset,
                            SpeechDataset, ensure_embedded_speech,
                            make_embedded_speech, read_transcripts,
                            sample_utterance)
from mmssl.registry import DATASETS


@pytest.fixture(scope='module')
def corpus(tmp_path_factory):
    return small_speech_corpus(tmp_path_factory.mktemp('speech_a'))


def _rows(path):
    with open(path) as f:
        lines = f.read().splitlines()
    return lines[0], [ln.split('\t') for ln in lines[1:]]


def test_corpus_layout_and_audio(corpus):
    root = corpus['root']
    assert corpus['generated']
    assert corpus['sample_rate'] == 16000
    vocab = CharCTCVocab.from_file(corpus['vocab'])
    assert vocab == CharCTCVocab()
    for split in SPEECH_SPLITS:
        first, rows = _rows(corpus['files'][split])
        assert first == '.'
        assert len(rows) == SMALL_SIZES[f'num_{split}']
        assert corpus['sizes'][split]['clips'] == len(rows)
        for rel, num, text in rows:
            info = soundfile.info(osp.join(root, rel))
            assert (info.samplerate, info.channels) == (16000, 1)
            assert info.subtype == 'PCM_16' and info.format == 'WAV'
            assert info.frames == int(num) > 8000  # longer than 0.5 s
            assert text == text.upper().strip() and '  ' not in text
            vocab.encode(text)  # every character is in the vocabulary
        # fairseq transcripts agree with the column
        texts = [r[2] for r in rows]
        assert read_transcripts(osp.join(root, f'{split}.wrd')) == texts
        assert read_transcripts(osp.join(root, f'{split}.ltr')) == texts
    audio, _ = soundfile.read(osp.join(root, rows[0][0]), dtype='int16')
    assert audio.dtype == np.int16 and np.abs(audio).max() > 3000


def test_corpus_reused(corpus):
    again = make_embedded_speech(corpus['root'], **SMALL_SIZES)
    assert not again['generated']
    assert ensure_embedded_speech(corpus['root'])['sizes'] == corpus['sizes']


def test_corpus_deterministic(corpus, tmp_path):
    # the same seed: identical bytes, built in other processes at another
    # time; a smaller train split keeps its clips
    other = small_speech_corpus(tmp_path, num_train=6)
    for split in ('val', 'test'):
        with open(corpus['files'][split], 'rb') as a, \
                open(other['files'][split], 'rb') as b:
            assert a.read() == b.read()
    _, rows_a = _rows(corpus['files']['train'])
    _, rows_b = _rows(other['files']['train'])
    assert rows_b == rows_a[:6]
    compared = rows_b + _rows(corpus['files']['val'])[1]
    # breathy variants draw from eSpeak's noise generator: seeded too
    voices = [
        sample_utterance(0, r[0].split('/')[1], int(r[0][-9:-4]))['voice']
        for r in compared
    ]
    assert any(v.endswith(('+f2', '+f3', '+f5')) for v in voices)
    for rel, _, _ in compared:
        with open(osp.join(corpus['root'], rel), 'rb') as a, \
                open(osp.join(other['root'], rel), 'rb') as b:
            assert a.read() == b.read(), rel


def test_utterance_sampling_is_seeded():
    a = [sample_utterance(0, 'train', i) for i in range(50)]
    assert a == [sample_utterance(0, 'train', i) for i in range(50)]
    assert a != [sample_utterance(1, 'train', i) for i in range(50)]
    assert len({u['voice'] for u in a}) > 10
    kinds = {
        u['transcript'].split()[0] in ('ZERO', 'ONE', 'TWO', 'THREE', 'FOUR',
                                       'FIVE', 'SIX', 'SEVEN', 'EIGHT', 'NINE')
        for u in a
    }
    assert kinds == {True, False}  # digit strings and sentences
    assert any("'" in u['transcript'] for u in a)


def test_missing_espeak(monkeypatch):
    from mmssl.datasets.espeak import ESpeak
    monkeypatch.setitem(sys.modules, 'espeakng_loader', None)
    with pytest.raises(ImportError, match='espeakng-loader'):
        ESpeak()


def test_embedded_dataset(corpus):
    ds = EmbeddedSpeechDataset(data_root=corpus['root'], split='val')
    assert len(ds) == SMALL_SIZES['num_val']
    info = ds.get_data_info(0)
    assert osp.isfile(info['audio_path'])
    assert info['num_samples'] > 0 and info['transcript']
    with pytest.raises(ValueError, match='split'):
        EmbeddedSpeechDataset(data_root=corpus['root'], split='dev')
    with pytest.raises(TypeError, match='ann_file'):
        EmbeddedSpeechDataset(data_root=corpus['root'], ann_file='x.tsv')


def test_embedded_dataset_pipeline(corpus):
    pipeline = [
        dict(type='mmssl.LoadAudio'),
        dict(type='mmssl.RandomAudioCrop', max_samples=16000),
        dict(type='mmssl.NormalizeAudio'),
        dict(type='mmssl.EncodeTranscript', vocab=corpus['vocab']),
        dict(type='mmssl.PackAudioInputs'),
    ]
    ds = DATASETS.build(
        dict(
            type='mmssl.EmbeddedSpeechDataset',
            data_root=corpus['root'],
            split='train',
            pipeline=pipeline))
    item = ds[0]
    wave, sample = item['inputs'], item['data_samples']
    assert wave.dtype.is_floating_point and wave.dim() == 1
    assert len(wave) == sample.num_samples <= 16000
    assert abs(float(wave.mean())) < 1e-3
    assert sample.transcript == ds.get_data_info(0)['transcript']
    assert CharCTCVocab().decode(sample.target_ids) == sample.transcript
    assert sample.audio_path == ds.get_data_info(0)['audio_path']


def _fairseq_layout(corpus, tmp_path, n=4):
    """A fairseq manifest with an absolute root and a .ltr file."""
    _, rows = _rows(corpus['files']['train'])
    rows = rows[:n]
    tsv = tmp_path / 'train.tsv'
    tsv.write_text(corpus['root'] + '\n' + ''.join(f'{r[0]}\t{r[1]}\n'
                                                   for r in rows))
    ltr = tmp_path / 'train.ltr'
    ltr.write_text(''.join(' '.join(r[2].replace(' ', '|')) + ' |\n'
                           for r in rows))
    return rows


def test_fairseq_manifest(corpus, tmp_path):
    rows = _fairseq_layout(corpus, tmp_path)
    ds = DATASETS.build(
        dict(
            type='mmssl.SpeechDataset',
            ann_file='train.tsv',
            transcript_file='train.ltr',
            data_root=str(tmp_path)))
    assert [ds.get_data_info(i)['transcript']
            for i in range(len(ds))] == [r[2] for r in rows]
    assert ds.get_data_info(1)['audio_path'] == osp.join(
        corpus['root'], rows[1][0])
    # pretraining: no transcripts
    plain = SpeechDataset(ann_file=str(tmp_path / 'train.tsv'))
    assert 'transcript' not in plain.get_data_info(0)
    # length filters
    lengths = sorted(int(r[1]) for r in rows)
    short = SpeechDataset(
        ann_file=str(tmp_path / 'train.tsv'), min_samples=lengths[1])
    assert len(short) == 3
    with pytest.raises(ValueError, match='min_samples'):
        SpeechDataset(
            ann_file=str(tmp_path / 'train.tsv'), min_samples=lengths[-1] + 1)


def test_manifest_errors(corpus, tmp_path):
    _fairseq_layout(corpus, tmp_path)
    (tmp_path / 'short.ltr').write_text('A |\n')
    with pytest.raises(ValueError, match=r'1 lines.*4 clips'):
        SpeechDataset(
            ann_file='train.tsv',
            transcript_file='short.ltr',
            data_root=str(tmp_path))
    bad = tmp_path / 'bad.tsv'
    bad.write_text('/data\na.wav 1234\n')
    with pytest.raises(ValueError, match=r'bad.tsv.*line 2'):
        SpeechDataset(ann_file=str(bad))
    empty = tmp_path / 'empty.tsv'
    empty.write_text('')
    with pytest.raises(ValueError, match='empty'):
        SpeechDataset(ann_file=str(empty))
    with pytest.raises(FileNotFoundError, match='nope.tsv'):
        SpeechDataset(ann_file=str(tmp_path / 'nope.tsv'))
    with pytest.raises(FileNotFoundError, match='nope.ltr'):
        SpeechDataset(
            ann_file=str(tmp_path / 'train.tsv'),
            transcript_file=str(tmp_path / 'nope.ltr'))


def test_manifest_lines_at_the_edges(tmp_path):
    """A root folder on the first line (a blank one is refused even when
    lines follow); ``path<TAB>count[<TAB>transcript]`` lines with a count
    of 0 or more; a fourth column or a negative count is refused."""
    from mmssl.datasets.speech import read_speech_manifest
    path = tmp_path / 'm.tsv'
    path.write_text('/data\na.wav\t0\nb.wav\t5\t HELLO   WORLD \n\n')
    assert read_speech_manifest(str(path)) == [
        dict(audio_path='/data/a.wav', num_samples=0),
        dict(
            audio_path='/data/b.wav', num_samples=5, transcript='HELLO WORLD')
    ]
    path.write_text('sub\nc.wav\t7\n')
    assert read_speech_manifest(str(path))[0]['audio_path'] == str(
        tmp_path / 'sub' / 'c.wav')
    path.write_text('\n/data\na.wav\t3\n')
    with pytest.raises(ValueError, match='no root folder'):
        read_speech_manifest(str(path))
    for line in ('a.wav\t-1', 'a.wav\t3\tHI\tX', 'a.wav\tx', 'a.wav'):
        path.write_text(f'/data\n{line}\n')
        with pytest.raises(ValueError, match='m.tsv.*line 2'):
            read_speech_manifest(str(path))


def test_length_filter_bounds(corpus, tmp_path):
    rows = _fairseq_layout(corpus, tmp_path)
    ann = str(tmp_path / 'train.tsv')
    assert len(SpeechDataset(ann_file=ann, min_samples=0)) == len(rows)
    lengths = sorted(int(r[1]) for r in rows)
    assert len(
        SpeechDataset(
            ann_file=ann, min_samples=lengths[0], max_samples=lengths[0])) == 1
    # refused before the manifest is read
    with pytest.raises(ValueError, match='max_samples must be .* >= 1, got 0'):
        SpeechDataset(ann_file=ann, max_samples=0)
    with pytest.raises(ValueError, match='max_samples must be .* >= 10'):
        SpeechDataset(ann_file=ann, min_samples=10, max_samples=9)
    with pytest.raises(ValueError, match='min_samples must be .* >= 0'):
        SpeechDataset(ann_file=ann, min_samples=-1)
