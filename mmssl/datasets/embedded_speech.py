# Copyright (c) mmssl contributors. All rights reserved.
"""The embedded speech corpus: synthesised English speech made on first
use, deterministically, for CTC fine-tuning and pretraining tests::

    data/embedded_speech/
        train.tsv, val.tsv, test.tsv   # manifests (see below)
        train.wrd / .ltr, ...          # fairseq-style transcripts
        dict.ltr.txt                   # the character vocabulary
        wav/<split>/<split>_<idx>.wav  # 16 kHz mono 16-bit PCM
        manifest.json                  # version, parameters, sizes

Each manifest is a fairseq wav2vec manifest with a transcript column: the
first line is the audio root (``.``, the manifest's own folder), then one
line per clip, ``relative_path<TAB>num_samples<TAB>transcript``.

Content: half the clips are digit strings (3 to 7 digits read as words,
``SEVEN ZERO FOUR``), half short sentences from a small grammar (about 90
words, a few with apostrophes: ``THE OLD TEACHER DIDN'T FIND A RED BOX``).
Each clip draws a voice (:data:`SPEECH_VOICES` accents times
:data:`SPEECH_VARIANTS`), a rate (130-200 words per minute), a pitch
(25-75 of eSpeak's 0-100), a peak level (0.3-0.9 of full scale) and white
noise at 10-30 dB SNR, all from a generator seeded by ``(seed, split,
index)``. Transcripts use upper-case letters, apostrophe and space
(LibriSpeech style), the alphabet of :class:`mmssl.CharCTCVocab`.

The clips are synthesised with eSpeak NG (:mod:`.espeak`) in fresh worker
processes, 32 clips each in a fixed order, so the same seed gives
byte-identical files whatever the number of workers, and clip ``i`` of a
split is the same in a smaller corpus. The folder is written beside the
destination and moved into place by renames under a file lock, so
processes that start together build it once.
"""
import hashlib
import os
import os.path as osp
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, Optional

import numpy as np

from mmssl.utils.validation import check_int
from .char_vocab import CharCTCVocab
from .embedded import _file_lock
from .espeak import AUDIO_RATE, synthesize_in_subprocess
from .text_corpus import install_folder

__all__ = [
    'SPEECH_SPLITS', 'SPEECH_VOICES', 'SPEECH_VARIANTS',
    'EMBEDDED_SPEECH_VERSION', 'sample_utterance', 'make_embedded_speech',
    'ensure_embedded_speech', 'load_speech_meta'
]

#: Bumped whenever the generator's output changes (a different version on
#: disk is rebuilt).
EMBEDDED_SPEECH_VERSION = '1.0'
SPEECH_SPLITS = ('train', 'val', 'test')
#: eSpeak NG English accents.
SPEECH_VOICES = ('en', 'en-us', 'en-gb-scotland', 'en-gb-x-rp', 'en-029',
                 'en-us-nyc', 'en-gb-x-gbclan')
#: eSpeak NG voice variants (speaker characteristics); '' is the accent's
#: own voice.
SPEECH_VARIANTS = ('', 'f1', 'f2', 'f3', 'f4', 'f5', 'm1', 'm2', 'm3', 'm4',
                   'm5', 'm6', 'm7', 'klatt', 'klatt2', 'Andy', 'Annie',
                   'david', 'linda', 'max', 'steph', 'robert')
_CHUNK = 32
_DIGITS = ('ZERO', 'ONE', 'TWO', 'THREE', 'FOUR', 'FIVE', 'SIX', 'SEVEN',
           'EIGHT', 'NINE')
_WORDS = dict(
    det=('THE', 'A', 'MY', 'HER', 'OUR', 'THIS', 'THAT'),
    adj=('RED', 'OLD', 'SMALL', 'BIG', 'GREEN', 'QUIET', 'HAPPY', 'BLUE',
         'YOUNG', 'DARK', 'WARM', 'TALL'),
    noun=('CAT', 'DOG', 'BIRD', 'TEACHER', 'CHILD', 'FARMER', 'DOCTOR',
          'HORSE', 'FRIEND', 'SAILOR', 'BAKER', 'FOX'),
    thing=('BOX', 'BALL', 'HOUSE', 'BOAT', 'LETTER', 'APPLE', 'CHAIR', 'BOOK',
           'WINDOW', 'GARDEN', 'BRIDGE', 'COAT'),
    verb=('SAW', 'FOUND', 'LIKES', 'MOVED', 'OPENED', 'PAINTED', 'WANTS',
          'CARRIED', 'SOLD', 'BROKE', 'CLEANED', 'WATCHED'),
    neg=("DIDN'T FIND", "DOESN'T LIKE", "CAN'T SEE", "WON'T SELL",
         "DIDN'T OPEN", "ISN'T NEAR"),
    tail=('TODAY', 'LAST NIGHT', 'IN THE MORNING', 'AT HOME', 'NEAR THE RIVER',
          'AFTER LUNCH', 'ON MONDAY'),
    start=("IT'S", "THAT'S", "HERE'S", "THERE'S"))


def _pick(rng: np.random.Generator, words) -> str:
    return words[int(rng.integers(len(words)))]


def _sentence(rng: np.random.Generator) -> str:
    w = _WORDS
    subj = f"{_pick(rng, w['det'])} {_pick(rng, w['adj'])} " \
           f"{_pick(rng, w['noun'])}"
    obj = f"{_pick(rng, w['det'])} {_pick(rng, w['adj'])} " \
          f"{_pick(rng, w['thing'])}"
    kind = int(rng.integers(4))
    if kind == 0:
        text = f"{subj} {_pick(rng, w['verb'])} {obj}"
    elif kind == 1:
        text = f"{subj} {_pick(rng, w['neg'])} {obj}"
    elif kind == 2:
        text = f"{_pick(rng, w['start'])} {obj}"
    else:
        text = f"{subj} {_pick(rng, w['verb'])} {obj} {_pick(rng, w['tail'])}"
    if kind in (0, 1, 2) and rng.random() < 0.4:
        text = f"{text} {_pick(rng, w['tail'])}"
    return text


def sample_utterance(seed: int, split: str, idx: int) -> Dict:
    """What clip ``idx`` of ``split`` says and how (pure, seeded).

    Returns:
        dict: ``transcript`` (upper case), ``text`` (what eSpeak reads),
        ``voice``, ``rate``, ``pitch``, ``synth_seed``, ``peak``,
        ``snr_db``, ``noise_seed``.
    """
    rng = np.random.default_rng([seed, SPEECH_SPLITS.index(split), idx])
    if rng.random() < 0.5:
        digits = rng.integers(10, size=int(rng.integers(3, 8)))
        transcript = ' '.join(_DIGITS[d] for d in digits)
    else:
        transcript = _sentence(rng)
    voice = _pick(rng, SPEECH_VOICES)
    variant = _pick(rng, SPEECH_VARIANTS)
    return dict(
        transcript=transcript,
        text=transcript.lower(),
        voice=f'{voice}+{variant}' if variant else voice,
        rate=int(rng.integers(130, 201)),
        pitch=int(rng.integers(25, 76)),
        synth_seed=int(rng.integers(2**31)),
        peak=round(float(rng.uniform(0.3, 0.9)), 4),
        snr_db=round(float(rng.uniform(10., 30.)), 3),
        noise_seed=[int(seed),
                    SPEECH_SPLITS.index(split),
                    int(idx), 1])


def _ltr(transcript: str) -> str:
    """fairseq letter targets: ``'A CAT'`` -> ``'A | C A T |'``."""
    return ' '.join(transcript.replace(' ', '|')) + ' |'


def _sha1(path: str) -> str:
    with open(path, 'rb') as f:
        return hashlib.sha1(f.read()).hexdigest()


def _generate(tmp: str, params: dict, workers: int) -> dict:
    """Write the corpus into the empty folder ``tmp``; its sizes."""
    items = {}
    chunks = []
    for split in SPEECH_SPLITS:
        jobs = []
        for idx in range(params[f'num_{split}']):
            spec = sample_utterance(params['seed'], split, idx)
            rel = f'wav/{split}/{split}_{idx:05d}.wav'
            jobs.append(dict(spec, rel=rel, path=osp.join(tmp, rel)))
        items[split] = jobs
        chunks += [jobs[i:i + _CHUNK] for i in range(0, len(jobs), _CHUNK)]
    with ThreadPoolExecutor(max(1, workers)) as pool:
        results = list(pool.map(synthesize_in_subprocess, chunks))
    for chunk, lengths in zip(chunks, results):
        for job, num in zip(chunk, lengths):
            job['num_samples'] = num
    sizes = {}
    for split, jobs in items.items():
        tsv = osp.join(tmp, f'{split}.tsv')
        with open(tsv, 'w', newline='\n') as f:
            f.write('.\n')
            f.writelines(f"{j['rel']}\t{j['num_samples']}\t"
                         f"{j['transcript']}\n" for j in jobs)
        with open(osp.join(tmp, f'{split}.wrd'), 'w', newline='\n') as f:
            f.writelines(j['transcript'] + '\n' for j in jobs)
        with open(osp.join(tmp, f'{split}.ltr'), 'w', newline='\n') as f:
            f.writelines(_ltr(j['transcript']) + '\n' for j in jobs)
        sizes[split] = dict(
            clips=len(jobs),
            seconds=round(sum(j['num_samples'] for j in jobs) / AUDIO_RATE, 2),
            tsv_sha1=_sha1(tsv))
    CharCTCVocab().save(osp.join(tmp, 'dict.ltr.txt'))
    return sizes


def load_speech_meta(root: str) -> Optional[dict]:
    """``root/manifest.json`` of a complete embedded speech corpus, else
    ``None``."""
    import json
    try:
        with open(osp.join(root, 'manifest.json')) as f:
            meta = json.load(f)
    except (OSError, ValueError):
        return None
    if not all(osp.isfile(osp.join(root, f'{s}.tsv')) for s in SPEECH_SPLITS):
        return None
    return meta


def _result(meta: dict, root: str, generated: bool) -> dict:
    files = {s: osp.join(root, f'{s}.tsv') for s in SPEECH_SPLITS}
    return dict(
        meta,
        root=root,
        files=files,
        vocab=osp.join(root, 'dict.ltr.txt'),
        generated=generated)


def make_embedded_speech(root: str = 'data/embedded_speech',
                         seed: int = 0,
                         num_train: int = 480,
                         num_val: int = 64,
                         num_test: int = 64,
                         force: bool = False,
                         workers: Optional[int] = None) -> dict:
    """Write (or reuse) the embedded speech corpus under ``root``.

    Args:
        root (str): output folder. Defaults to ``'data/embedded_speech'``.
        seed (int): seed of every clip. Defaults to 0.
        num_train (int): training clips. Defaults to 480.
        num_val (int): validation clips. Defaults to 64.
        num_test (int): test clips. Defaults to 64.
        force (bool): rebuild even if the same corpus exists.
        workers (int, optional): synthesis processes at once; None for the
            number of CPUs (at most 4). The output does not depend on it.

    Returns:
        dict: ``manifest.json`` (``version``, ``params``, ``sizes``: split
        -> ``clips``, ``seconds``, ``tsv_sha1``; ``build_seconds``) plus
        ``root``, ``files`` (split -> manifest TSV), ``vocab`` (the
        ``dict.ltr.txt`` path) and ``generated``.

    Raises:
        ImportError: the eSpeak NG package ``espeakng-loader`` is missing.
    """
    owner = 'make_embedded_speech'
    params = dict(
        version=EMBEDDED_SPEECH_VERSION,
        seed=check_int(seed, 'seed', owner, minimum=0),
        num_train=check_int(num_train, 'num_train', owner),
        num_val=check_int(num_val, 'num_val', owner),
        num_test=check_int(num_test, 'num_test', owner))
    if workers is None:
        workers = min(4, os.cpu_count() or 1)
    workers = check_int(workers, 'workers', owner)
    root = osp.abspath(osp.expanduser(root))
    meta = None if force else load_speech_meta(root)
    if meta is not None and meta.get('params') == params:
        return _result(meta, root, False)
    parent = osp.dirname(root)
    os.makedirs(parent, exist_ok=True)
    called_at = time.time()
    with _file_lock(parent):
        meta = load_speech_meta(root)  # another process may have made it
        if meta is not None and meta.get('params') == params and (
                not force or meta.get('created_at', 0) >= called_at):
            return _result(meta, root, False)
        tmp = tempfile.mkdtemp(prefix='.tmp-speech-', dir=parent)
        try:
            sizes = _generate(tmp, params, workers)
            meta = dict(
                generator='mmssl.datasets.embedded_speech',
                params=params,
                sample_rate=AUDIO_RATE,
                sizes=sizes,
                build_seconds=round(time.time() - called_at, 1),
                created_at=time.time())
            install_folder(tmp, root, meta)
        finally:
            if osp.isdir(tmp):
                shutil.rmtree(tmp, ignore_errors=True)
    return _result(meta, root, True)


def ensure_embedded_speech(root: str = 'data/embedded_speech',
                           **kwargs) -> dict:
    """Make sure an embedded speech corpus exists under ``root``.

    Without keyword arguments any complete corpus of the current generator
    version is accepted (a smaller one made for tests, too), and the
    default one is made if there is none; with keyword arguments this is
    :func:`make_embedded_speech` with them.
    """
    if not kwargs:
        root_abs = osp.abspath(osp.expanduser(root))
        meta = load_speech_meta(root_abs)
        if meta is not None and meta.get(
                'params', {}).get('version') == EMBEDDED_SPEECH_VERSION:
            return _result(meta, root_abs, False)
    return make_embedded_speech(root, **kwargs)
