# Copyright (c) mmssl contributors. All rights reserved.
"""Audio transforms of speech items (:class:`mmssl.SpeechDataset`).

A pipeline reads the clip (``mmssl.LoadAudio``), crops it
(``mmssl.RandomAudioCrop``, pretraining), normalises it
(``mmssl.NormalizeAudio``), encodes the transcript for CTC
(``mmssl.EncodeTranscript``) and packs the item
(``mmssl.PackAudioInputs``) into ``dict(inputs=FloatTensor (T,),
data_samples=DataSample)``, the format :class:`mmssl.AudioDataPreprocessor`
batches. Waveforms are float32 ``(T,)`` in ``results['audio']``.
"""
import os.path as osp
from typing import Optional, Union

import numpy as np
import torch
from mmcv.transforms import BaseTransform

from mmssl.registry import TRANSFORMS
from mmssl.utils.validation import check_float, check_int
from ..char_vocab import CharCTCVocab

__all__ = [
    'LoadAudio', 'RandomAudioCrop', 'NormalizeAudio', 'EncodeTranscript',
    'PackAudioInputs', 'read_audio', 'normalize_audio'
]


def read_audio(path: str,
               sample_rate: int = 16000,
               resample: bool = False,
               mix_to_mono: bool = False) -> np.ndarray:
    """Read a clip as float32 ``(T,)`` in [-1, 1] at ``sample_rate``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: unreadable (corrupt or not audio), empty, another sample
            rate without ``resample``, several channels without
            ``mix_to_mono``; the message names the file and the fix.
    """
    import soundfile
    try:
        audio, rate = soundfile.read(path, dtype='float32', always_2d=True)
    except Exception as err:  # soundfile.LibsndfileError, RuntimeError
        if not osp.exists(path):
            raise FileNotFoundError(
                f'audio file {path!r} does not exist; check the manifest '
                'root (its first line) and relative paths') from None
        raise ValueError(
            f'audio file {path!r} cannot be read as audio ({err}); it is '
            'corrupt or not a format libsndfile reads (WAV, FLAC, OGG); '
            're-export it or drop it from the manifest') from None
    if audio.shape[0] == 0:
        raise ValueError(f'audio file {path!r} is empty (0 samples); drop '
                         'it from the manifest')
    channels = audio.shape[1]
    if channels > 1:
        if not mix_to_mono:
            raise ValueError(
                f'audio file {path!r} has {channels} channels; speech '
                'models take mono audio: set mix_to_mono=True in LoadAudio '
                'to average the channels, or convert the file to mono')
        audio = audio.mean(axis=1, dtype=np.float32)
    else:
        audio = audio[:, 0]
    if rate != sample_rate:
        if not resample:
            raise ValueError(
                f'audio file {path!r} is sampled at {rate} Hz, not '
                f'{sample_rate} Hz; set resample=True in LoadAudio to '
                'resample it when loading, or convert the file')
        from math import gcd

        from scipy.signal import resample_poly
        g = gcd(int(rate), int(sample_rate))
        audio = resample_poly(audio, sample_rate // g,
                              rate // g).astype(np.float32)
    return np.ascontiguousarray(audio)


def normalize_audio(audio: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """Zero mean, unit variance of a ``(T,)`` clip (wav2vec 2.0's
    ``normalize=True``: ``layer_norm`` over the whole clip)."""
    audio = audio.astype(np.float32)
    mean = audio.mean(dtype=np.float64)
    var = audio.var(dtype=np.float64)
    return ((audio - mean) / np.sqrt(var + eps)).astype(np.float32)


@TRANSFORMS.register_module()
class LoadAudio(BaseTransform):
    """Read ``results['audio_path']`` (``mmssl.LoadAudio``).

    Adds ``audio`` (float32 ``(T,)``), ``sample_rate`` and ``num_samples``
    (the length read, which replaces the manifest's).

    Args:
        sample_rate (int): the rate the model expects. Defaults to 16000.
        resample (bool): resample clips of another rate (scipy
            ``resample_poly``) instead of refusing them. Defaults to False.
        mix_to_mono (bool): average the channels of multi-channel clips
            instead of refusing them. Defaults to False.
    """

    def __init__(self,
                 sample_rate: int = 16000,
                 resample: bool = False,
                 mix_to_mono: bool = False) -> None:
        self.sample_rate = check_int(sample_rate, 'sample_rate',
                                     'mmssl.LoadAudio')
        self.resample = bool(resample)
        self.mix_to_mono = bool(mix_to_mono)

    def transform(self, results: dict) -> dict:
        audio = read_audio(results['audio_path'], self.sample_rate,
                           self.resample, self.mix_to_mono)
        results['audio'] = audio
        results['sample_rate'] = self.sample_rate
        results['num_samples'] = int(audio.shape[0])
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(sample_rate={self.sample_rate}, '
                f'resample={self.resample}, '
                f'mix_to_mono={self.mix_to_mono})')


@TRANSFORMS.register_module()
class RandomAudioCrop(BaseTransform):
    """Crop ``audio`` to at most ``max_samples`` at a random start
    (``mmssl.RandomAudioCrop``); shorter clips are kept whole.

    With ``min_samples == max_samples`` every clip comes out with the same
    length (pretraining batches without padding); clips shorter than
    ``min_samples`` are refused, so filter them in the data set
    (``SpeechDataset(min_samples=...)``).

    Args:
        max_samples (int): longest output.
        min_samples (int, optional): shortest accepted clip. Defaults to
            None (no minimum).
    """

    def __init__(self,
                 max_samples: int,
                 min_samples: Optional[int] = None) -> None:
        owner = 'mmssl.RandomAudioCrop'
        self.max_samples = check_int(max_samples, 'max_samples', owner)
        self.min_samples = None if min_samples is None else check_int(
            min_samples,
            'min_samples',
            owner,
            1,
            self.max_samples,
            note='at most max_samples')

    def transform(self, results: dict) -> dict:
        audio = results['audio']
        length = audio.shape[0]
        if self.min_samples is not None and length < self.min_samples:
            raise ValueError(
                f'RandomAudioCrop: clip {results.get("audio_path")!r} has '
                f'{length} samples, fewer than min_samples='
                f'{self.min_samples}; filter short clips in the data set '
                f'(SpeechDataset(min_samples={self.min_samples}))')
        if length > self.max_samples:
            start = int(np.random.randint(length - self.max_samples + 1))
            audio = audio[start:start + self.max_samples]
        results['audio'] = audio
        results['num_samples'] = int(audio.shape[0])
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(max_samples={self.max_samples}, '
                f'min_samples={self.min_samples})')


@TRANSFORMS.register_module()
class NormalizeAudio(BaseTransform):
    """Zero mean, unit variance of each clip (``mmssl.NormalizeAudio``;
    wav2vec 2.0 / data2vec ``normalize=True``).

    Args:
        eps (float): added to the variance. Defaults to 1e-5.
    """

    def __init__(self, eps: float = 1e-5) -> None:
        self.eps = check_float(
            eps, 'eps', 'mmssl.NormalizeAudio', 0., inclusive=(False, True))

    def transform(self, results: dict) -> dict:
        results['audio'] = normalize_audio(results['audio'], self.eps)
        return results


@TRANSFORMS.register_module()
class EncodeTranscript(BaseTransform):
    """``transcript`` -> ``target_ids`` (int64 ``(L,)``) with a character
    vocabulary (``mmssl.EncodeTranscript``).

    Args:
        vocab (str | dict | CharCTCVocab, optional): a vocabulary file
            (``dict.ltr.txt``), a config of :class:`mmssl.CharCTCVocab` or
            an instance; None for the default (blank, ``|``, A-Z, ').
        upper_case (bool): upper-case transcripts first (for lower-case
            corpora). Defaults to False.
    """

    def __init__(self,
                 vocab: Union[None, str, dict, CharCTCVocab] = None,
                 upper_case: bool = False) -> None:
        self.vocab = CharCTCVocab.build(vocab)
        self.upper_case = bool(upper_case)

    def transform(self, results: dict) -> dict:
        if 'transcript' not in results:
            raise KeyError(
                f'EncodeTranscript: clip {results.get("audio_path")!r} has '
                'no transcript; give the data set a transcript_file (or a '
                'transcript column), or drop EncodeTranscript from a '
                'pretraining pipeline')
        text = results['transcript']
        if self.upper_case:
            text = text.upper()
            results['transcript'] = text
        source = f'audio file {results.get("audio_path")!r}'
        results['target_ids'] = np.asarray(
            self.vocab.encode(text, source), dtype=np.int64)
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(vocab={self.vocab!r})'


@TRANSFORMS.register_module()
class PackAudioInputs(BaseTransform):
    """Pack a speech item (``mmssl.PackAudioInputs``).

    Output::

        dict(inputs=FloatTensor (T,),
             data_samples=DataSample(num_samples=T,           # int
                                     transcript=str,          # if present
                                     target_ids=LongTensor (L,),  # if present
                                     metainfo: audio_path, sample_idx))
    """

    def transform(self, results: dict) -> dict:
        from mmpretrain.structures import DataSample
        audio = results['audio']
        inputs = torch.from_numpy(
            np.ascontiguousarray(audio, dtype=np.float32))
        sample = DataSample()
        sample.set_field(int(inputs.shape[0]), 'num_samples', dtype=int)
        if 'transcript' in results:
            sample.set_field(results['transcript'], 'transcript', dtype=str)
        if 'target_ids' in results:
            sample.set_field(
                torch.as_tensor(results['target_ids'], dtype=torch.long),
                'target_ids')
        meta = {
            k: results[k]
            for k in ('audio_path', 'sample_idx') if k in results
        }
        sample.set_metainfo(meta)
        return dict(inputs=inputs, data_samples=sample)
