# Copyright (c) mmssl contributors. All rights reserved.
"""Audio loading, cropping, normalising, transcript encoding, packing."""
import numpy as np
import pytest
import soundfile
import torch

from mmssl.datasets.transforms import (EncodeTranscript, LoadAudio,
                                       NormalizeAudio, PackAudioInputs,
                                       RandomAudioCrop)
from mmssl.registry import TRANSFORMS


def _tone(seconds, rate, channels=1):
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.5 * np.sin(2 * np.pi * 440 * t)
    return np.stack([wave] * channels, 1) if channels > 1 else wave


def _write(tmp_path, name, wave, rate):
    path = str(tmp_path / name)
    soundfile.write(path, wave, rate, subtype='PCM_16')
    return path


def test_load_16k(tmp_path):
    path = _write(tmp_path, 'a.wav', _tone(0.5, 16000), 16000)
    out = LoadAudio().transform(dict(audio_path=path, num_samples=1))
    assert out['audio'].dtype == np.float32 and out['audio'].shape == (8000, )
    assert out['num_samples'] == 8000 and out['sample_rate'] == 16000
    assert abs(float(np.abs(out['audio']).max()) - 0.5) < 1e-3


def test_wrong_rate_refused_or_resampled(tmp_path):
    path = _write(tmp_path, 'low.wav', _tone(0.5, 8000), 8000)
    with pytest.raises(ValueError) as err:
        LoadAudio()(dict(audio_path=path))
    msg = str(err.value)
    assert 'low.wav' in msg and '8000 Hz' in msg and 'resample=True' in msg
    out = LoadAudio(resample=True)(dict(audio_path=path))
    assert out['audio'].shape == (8000, ) and out['num_samples'] == 8000
    path = _write(tmp_path, 'cd.wav', _tone(0.25, 44100), 44100)
    out = LoadAudio(resample=True)(dict(audio_path=path))
    assert out['audio'].shape == (4000, )


def test_stereo_refused_or_mixed(tmp_path):
    path = _write(tmp_path, 'stereo.wav', _tone(0.25, 16000, 2), 16000)
    with pytest.raises(ValueError) as err:
        LoadAudio()(dict(audio_path=path))
    msg = str(err.value)
    assert 'stereo.wav' in msg and '2 channels' in msg
    assert 'mix_to_mono=True' in msg
    out = LoadAudio(mix_to_mono=True)(dict(audio_path=path))
    assert out['audio'].shape == (4000, )


def test_empty_corrupt_missing(tmp_path):
    empty = _write(tmp_path, 'empty.wav', np.zeros(0), 16000)
    with pytest.raises(ValueError, match=r'empty.wav.*empty'):
        LoadAudio()(dict(audio_path=empty))
    corrupt = tmp_path / 'corrupt.wav'
    corrupt.write_bytes(b'RIFF\x00\x01garbage' * 20)
    with pytest.raises(ValueError, match=r'corrupt.wav.*cannot be read'):
        LoadAudio()(dict(audio_path=str(corrupt)))
    text = tmp_path / 'notes.flac'
    text.write_text('not audio')
    with pytest.raises(ValueError, match='notes.flac'):
        LoadAudio()(dict(audio_path=str(text)))
    with pytest.raises(FileNotFoundError, match='missing.wav'):
        LoadAudio()(dict(audio_path=str(tmp_path / 'missing.wav')))


def test_random_crop_lengths():
    crop = RandomAudioCrop(max_samples=100)
    starts = set()
    for _ in range(20):
        wave = np.arange(250, dtype=np.float32)
        out = crop(dict(audio=wave))
        assert out['audio'].shape == (100, ) and out['num_samples'] == 100
        start = int(out['audio'][0])
        assert np.array_equal(out['audio'], np.arange(start, start + 100))
        starts.add(start)
    assert len(starts) > 1
    out = crop(dict(audio=np.zeros(60, np.float32)))
    assert out['audio'].shape == (60, )  # shorter clips are kept whole
    fixed = RandomAudioCrop(max_samples=100, min_samples=100)
    with pytest.raises(ValueError, match=r'x.wav.*60 samples.*min_samples'):
        fixed(dict(audio=np.zeros(60, np.float32), audio_path='x.wav'))
    with pytest.raises(ValueError, match='min_samples'):
        RandomAudioCrop(max_samples=100, min_samples=200)
    with pytest.raises(ValueError, match='max_samples'):
        RandomAudioCrop(max_samples=0)


def test_normalize():
    wave = 3 + 2 * np.random.default_rng(0).standard_normal(4000)
    out = NormalizeAudio()(dict(audio=wave.astype(np.float32)))['audio']
    assert out.dtype == np.float32
    assert abs(out.mean()) < 1e-4 and abs(out.std() - 1) < 1e-3
    silent = NormalizeAudio()(dict(audio=np.zeros(10, np.float32)))['audio']
    assert np.all(silent == 0)


def test_encode_transcript():
    out = EncodeTranscript()(dict(transcript='AB C', audio_path='a.wav'))
    assert out['target_ids'].tolist() == [2, 3, 1, 4]
    with pytest.raises(ValueError) as err:
        EncodeTranscript()(dict(transcript='AB-C', audio_path='clip7.wav'))
    msg = str(err.value)
    assert 'clip7.wav' in msg and "'-'" in msg and 'position 2' in msg
    lower = EncodeTranscript(upper_case=True)(dict(transcript='ab c'))
    assert lower['transcript'] == 'AB C'
    assert lower['target_ids'].tolist() == [2, 3, 1, 4]
    with pytest.raises(KeyError, match='transcript'):
        EncodeTranscript()(dict(audio_path='a.wav'))


def test_pack():
    packed = PackAudioInputs()(
        dict(
            audio=np.ones(5, np.float32),
            audio_path='a.wav',
            sample_idx=3,
            transcript='AB',
            target_ids=np.array([2, 3])))
    wave, sample = packed['inputs'], packed['data_samples']
    assert wave.dtype == torch.float32 and wave.shape == (5, )
    assert sample.num_samples == 5 and sample.transcript == 'AB'
    assert sample.target_ids.dtype == torch.long
    assert sample.target_ids.tolist() == [2, 3]
    assert sample.audio_path == 'a.wav' and sample.sample_idx == 3
    bare = PackAudioInputs()(dict(audio=np.ones(4, np.float32)))
    assert 'transcript' not in bare['data_samples']
    assert 'target_ids' not in bare['data_samples']


@pytest.mark.parametrize('cfg', [
    dict(type='mmssl.LoadAudio', resample=True, mix_to_mono=True),
    dict(type='mmssl.RandomAudioCrop', max_samples=32000, min_samples=16000),
    dict(type='mmssl.NormalizeAudio'),
    dict(type='mmssl.EncodeTranscript'),
    dict(type='mmssl.PackAudioInputs'),
])
def test_build_from_config(cfg):
    assert TRANSFORMS.build(cfg) is not None


def test_read_audio_defaults_and_the_mono_mix(tmp_path):
    """read_audio alone: 16 kHz mono expected (other rates and several
    channels refused by default); mix_to_mono averages the channels."""
    from mmssl.datasets.transforms.audio import read_audio
    mono = _write(tmp_path, 'm.wav', _tone(0.25, 16000), 16000)
    assert read_audio(mono).shape == (4000, )
    with pytest.raises(ValueError, match='8000 Hz, not 16000 Hz'):
        read_audio(_write(tmp_path, 'l.wav', _tone(0.25, 8000), 8000))
    left = _tone(0.25, 16000)
    pair = np.stack([left, 0.5 * left], 1)
    stereo = _write(tmp_path, 's.wav', pair, 16000)
    with pytest.raises(ValueError, match='2 channels'):
        read_audio(stereo)
    mixed = read_audio(stereo, mix_to_mono=True)
    np.testing.assert_allclose(mixed, 0.75 * left, atol=1e-4)


def test_normalize_eps_and_crop_edges():
    """eps 1e-5 (fairseq's layer_norm over the clip): a clip of variance
    1e-5 comes out with std sqrt(1/2); eps 0 refused. The crop start is
    uniform over 0 ... length - max_samples; a clip of exactly
    min_samples passes, min_samples 0 is refused; lower-case transcripts
    are not upper-cased by default."""
    quiet = (np.sqrt(1e-5) * np.array([1., -1.] * 500)).astype(np.float32)
    from mmssl.datasets.transforms.audio import normalize_audio
    for out in (NormalizeAudio()(dict(audio=quiet))['audio'],
                normalize_audio(quiet)):
        assert abs(out.std() - np.sqrt(0.5)) < 1e-3
    with pytest.raises(ValueError, match='eps'):
        NormalizeAudio(eps=0.)
    np.random.seed(0)
    crop = RandomAudioCrop(10, min_samples=10)
    starts = {
        int(crop(dict(audio=np.arange(12, dtype=np.float32)))['audio'][0])
        for _ in range(60)
    }
    assert starts == {0, 1, 2}
    exact = crop(dict(audio=np.arange(10, dtype=np.float32)))['audio']
    assert exact.tolist() == list(range(10))
    assert RandomAudioCrop(10, min_samples=1).min_samples == 1
    with pytest.raises(ValueError, match='min_samples'):
        RandomAudioCrop(10, min_samples=0)
    with pytest.raises(ValueError, match='transcript|character|vocab'):
        EncodeTranscript()(dict(transcript='ab c', audio_path='a.wav'))
