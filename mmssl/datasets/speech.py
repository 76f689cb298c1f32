# Copyright (c) mmssl contributors. All rights reserved.
"""Speech data sets: fairseq wav2vec manifests and the embedded corpus.

A manifest (``train.tsv``) is what fairseq's
``examples/wav2vec/wav2vec_manifest.py`` writes: the first line is the
audio root folder, then one clip a line, ``relative_path<TAB>num_samples``
(a relative root is taken from the manifest's own folder). Transcripts come
from an optional third column (the embedded corpus writes one) or from a
file with one line per clip in the same order (``transcript_file``):
fairseq's letter targets ``train.ltr`` (``T H E | C A T |``) or word
targets ``train.wrd`` / any other suffix (``THE CAT``).

Each item (data info) holds ``audio_path`` (absolute), ``num_samples``
(from the manifest) and, when there are transcripts, ``transcript``
(words separated by single spaces).
"""
import os.path as osp
from typing import List, Optional

from mmengine.dataset import BaseDataset
from mmengine.logging import print_log

from mmssl.registry import DATASETS
from mmssl.utils.validation import check_choice, check_int
from .embedded_speech import SPEECH_SPLITS, ensure_embedded_speech

__all__ = [
    'SpeechDataset', 'EmbeddedSpeechDataset', 'read_speech_manifest',
    'read_transcripts'
]


def read_speech_manifest(path: str) -> List[dict]:
    """Read a wav2vec manifest.

    Returns:
        list[dict]: ``audio_path``, ``num_samples`` and, with a third
        column, ``transcript`` per clip.

    Raises:
        FileNotFoundError / ValueError: missing file, empty file or a bad
            line (the message names the file and line).
    """
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'speech manifest {path!r} does not exist; write one with '
            "fairseq's wav2vec_manifest.py (root folder on the first line, "
            'then relative_path<TAB>num_samples lines) or use '
            'mmssl.EmbeddedSpeechDataset')
    with open(path, encoding='utf-8') as f:
        lines = f.read().splitlines()
    if not lines or not lines[0].strip():
        raise ValueError(
            f'speech manifest {path!r} is empty or has no root folder on its '
            'first line; the format is the root folder, then '
            'relative_path<TAB>num_samples[<TAB>transcript] lines')
    root = lines[0].strip()
    if not osp.isabs(root):
        root = osp.join(osp.dirname(osp.abspath(path)), root)
    items = []
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split('\t')
        try:
            num = int(fields[1])
            if num < 0 or len(fields) > 3:
                raise ValueError
        except (IndexError, ValueError):
            raise ValueError(
                f'speech manifest {path!r} line {lineno}: {line!r} is not '
                'relative_path<TAB>num_samples[<TAB>transcript] (tab '
                'separated, num_samples a count of samples)') from None
        item = dict(
            audio_path=osp.normpath(osp.join(root, fields[0])),
            num_samples=num)
        if len(fields) == 3:
            item['transcript'] = ' '.join(fields[2].split())
        items.append(item)
    return items


def read_transcripts(path: str) -> List[str]:
    """One transcript a line: fairseq letter targets (``.ltr``: letters
    separated by spaces, ``|`` between words) or words (other suffixes)."""
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'transcript file {path!r} does not exist; give a .ltr / .wrd '
            "file as fairseq's libri_labels.py writes it, one line per "
            'manifest line')
    with open(path, encoding='utf-8') as f:
        lines = f.read().splitlines()
    if path.endswith('.ltr'):
        return [
            ' '.join(ln.replace(' ', '').replace('|', ' ').split())
            for ln in lines
        ]
    return [' '.join(ln.split()) for ln in lines]


@DATASETS.register_module()
class SpeechDataset(BaseDataset):
    """Clips of a wav2vec manifest (``mmssl.SpeechDataset``).

    Args:
        ann_file (str): the manifest TSV (see the module docstring),
            relative to ``data_root`` unless absolute.
        transcript_file (str, optional): ``.ltr`` / ``.wrd`` transcripts,
            one line per manifest line (relative to ``data_root`` unless
            absolute); they replace a transcript column. None: the column's
            transcripts, or none (pretraining).
        min_samples (int, optional): drop clips shorter than this (e.g. the
            crop length of pretraining). Defaults to None.
        max_samples (int, optional): drop clips longer than this.
            Defaults to None.
        **kwargs: the other arguments of mmengine's ``BaseDataset``
            (``data_root``, ``pipeline``, ``indices``, ``test_mode``, ...).
    """

    def __init__(self,
                 ann_file: str,
                 transcript_file: Optional[str] = None,
                 min_samples: Optional[int] = None,
                 max_samples: Optional[int] = None,
                 **kwargs) -> None:
        owner = 'mmssl.SpeechDataset'
        self.min_samples = None if min_samples is None else check_int(
            min_samples, 'min_samples', owner, minimum=0)
        self.max_samples = None if max_samples is None else check_int(
            max_samples, 'max_samples', owner, minimum=self.min_samples or 1)
        self.transcript_file = transcript_file
        kwargs.setdefault('data_prefix', dict(audio_path=''))
        super().__init__(ann_file=ann_file, **kwargs)

    def load_data_list(self) -> List[dict]:
        items = read_speech_manifest(self.ann_file)
        if self.transcript_file is not None:
            path = self.transcript_file
            if self.data_root and not osp.isabs(path):
                path = osp.join(self.data_root, path)
            texts = read_transcripts(path)
            if len(texts) != len(items):
                raise ValueError(
                    f'transcript file {path!r} has {len(texts)} lines but '
                    f'manifest {self.ann_file!r} lists {len(items)} clips; '
                    'they must match line by line (same order)')
            for item, text in zip(items, texts):
                item['transcript'] = text
        kept = [
            it for it in items
            if (self.min_samples is None
                or it['num_samples'] >= self.min_samples) and
            (self.max_samples is None or it['num_samples'] <= self.max_samples)
        ]
        if len(kept) < len(items):
            print_log(
                f'SpeechDataset: {len(items) - len(kept)} of {len(items)} '
                f'clips of {self.ann_file} are outside min_samples='
                f'{self.min_samples} / max_samples={self.max_samples} and '
                'were dropped',
                logger='current')
        if not kept:
            raise ValueError(
                f'SpeechDataset: no clip of {self.ann_file!r} is within '
                f'min_samples={self.min_samples} / max_samples='
                f'{self.max_samples}; lower min_samples or raise '
                'max_samples')
        return kept


@DATASETS.register_module()
class EmbeddedSpeechDataset(SpeechDataset):
    """A split of the embedded speech corpus
    (``mmssl.EmbeddedSpeechDataset``), made on first use (see
    :mod:`mmssl.datasets.embedded_speech`).

    Args:
        data_root (str): the corpus folder.
            Defaults to ``'data/embedded_speech'``.
        split (str): ``'train'``, ``'val'`` or ``'test'``.
            Defaults to ``'train'``.
        **kwargs: the other arguments of :class:`SpeechDataset`
            (``min_samples``, ``max_samples``, ``pipeline``, ...); not
            ``ann_file``.
    """

    def __init__(self,
                 data_root: str = 'data/embedded_speech',
                 split: str = 'train',
                 **kwargs) -> None:
        owner = 'mmssl.EmbeddedSpeechDataset'
        split = check_choice(split, 'split', owner, SPEECH_SPLITS)
        for key in ('ann_file', 'transcript_file'):
            if key in kwargs:
                raise TypeError(f'{owner}: {key} comes from data_root and '
                                'split; use mmssl.SpeechDataset for other '
                                'manifests')
        meta = ensure_embedded_speech(data_root)
        self.split = split
        super().__init__(ann_file=meta['files'][split], **kwargs)
