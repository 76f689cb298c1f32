# Copyright (c) mmssl contributors. All rights reserved.
"""Speech synthesis with eSpeak NG for the embedded speech corpus.

The eSpeak NG shared library and its voice data come from the
``espeakng-loader`` package; :class:`ESpeak` drives the library's C API
through :mod:`ctypes` (synchronous synthesis, samples collected by a
callback) and :func:`render_utterance` turns its 22,050 Hz output into the
corpus' 16 kHz int16 clips (resampled, trimmed, scaled, with Gaussian noise
at a given SNR).

The library's noise generator (used by the breathy voice variants) is
seeded from the clock unless seeded explicitly, which :meth:`ESpeak.synth`
does before each utterance. The library also keeps state between
utterances (phase and smoothing buffers) that re-initialisation does not
reset, so an utterance depends on what the same process synthesised
before it. Deterministic corpora therefore synthesise a fixed list of
utterances in a fresh process: :func:`synthesize_in_subprocess` runs this
file as a script (it imports nothing from mmssl, so the child starts
quickly), feeds it the list as JSON on stdin and reads the clip lengths
from its stdout.
"""
import ctypes
import json
import os
import os.path as osp
import subprocess
import sys
from typing import Dict, List, Sequence

import numpy as np

__all__ = [
    'ESPEAK_RATE', 'AUDIO_RATE', 'ESpeak', 'render_utterance',
    'synthesize_jobs', 'synthesize_in_subprocess'
]

#: Native sample rate of eSpeak NG's voices (Hz).
ESPEAK_RATE = 22050
#: Sample rate of the written clips (Hz).
AUDIO_RATE = 16000

# espeak_AUDIO_OUTPUT, espeak_PARAMETER, espeak_POSITION_TYPE and flags
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_RATE, _PITCH = 1, 3
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_INSTALL_HINT = ('install it with `pip install "espeakng-loader==0.2.*"` '
                 '(it ships the eSpeak NG library and voices; see '
                 'requirements/runtime.txt)')
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short),
                             ctypes.c_int, ctypes.c_void_p)


class ESpeak:
    """The eSpeak NG library of ``espeakng-loader``, initialised for
    synchronous synthesis into memory.

    Raises:
        ImportError: ``espeakng-loader`` is not installed.
        RuntimeError: the library or its data cannot be loaded.
    """

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError as err:
            raise ImportError(
                'the embedded speech corpus needs the eSpeak NG speech '
                f'synthesiser from the espeakng-loader package; '
                f'{_INSTALL_HINT}') from err
        lib_path = espeakng_loader.get_library_path()
        try:
            data_path = espeakng_loader.get_data_path()
            lib = ctypes.CDLL(lib_path)
        except (OSError, RuntimeError) as err:
            raise RuntimeError(
                f'cannot load the eSpeak NG library {lib_path!r} of '
                f'espeakng-loader ({err}); reinstall it: {_INSTALL_HINT}'
            ) from err
        lib.espeak_Initialize.argtypes = [
            ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int
        ]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int] * 3
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
            ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p
        ]
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0,
                                     data_path.encode(), 0)
        if rate != ESPEAK_RATE:
            raise RuntimeError(
                f'eSpeak NG failed to initialise with the voice data in '
                f'{data_path!r} (returned {rate}, expected the sample rate '
                f'{ESPEAK_RATE}); reinstall it: {_INSTALL_HINT}')
        self._chunks: List[np.ndarray] = []

        def collect(wav, num, events):
            if num > 0:
                self._chunks.append(
                    np.ctypeslib.as_array(wav, shape=(num, )).copy())
            return 0

        self._callback = _CALLBACK(collect)  # keep a reference alive
        lib.espeak_SetSynthCallback(self._callback)
        self.lib = lib

    def synth(self,
              text: str,
              voice: str,
              rate: int,
              pitch: int,
              seed: int = 0) -> np.ndarray:
        """Speak ``text``.

        Args:
            text (str): what to say (lower case reads as words).
            voice (str): an eSpeak voice name with an optional variant,
                e.g. ``'en-us'`` or ``'en+f3'``.
            rate (int): words per minute (80-450).
            pitch (int): base pitch, 0-100 (50 is the voice's own).
            seed (int): seed of the library's noise generator (breathy
                voice variants draw from it; it is seeded from the clock
                otherwise). Defaults to 0.

        Returns:
            np.ndarray: int16 samples ``(T,)`` at :data:`ESPEAK_RATE`.
        """
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ValueError(f'eSpeak NG has no voice {voice!r}')
        self.lib.espeak_SetParameter(_RATE, int(rate), 0)
        self.lib.espeak_SetParameter(_PITCH, int(pitch), 0)
        self.lib.espeak_ng_SetRandSeed(ctypes.c_long(int(seed)))
        self._chunks.clear()
        raw = text.encode('utf-8')
        err = self.lib.espeak_Synth(raw,
                                    len(raw) + 1, 0, _POS_CHARACTER, 0,
                                    _CHARS_UTF8, None, None)
        self.lib.espeak_Synchronize()
        if err != 0:
            raise RuntimeError(f'eSpeak NG failed to speak {text!r} with '
                               f'voice {voice!r} (error {err})')
        if not self._chunks:
            return np.zeros(0, np.int16)
        return np.concatenate(self._chunks)


def render_utterance(wave: np.ndarray, peak: float, snr_db: float,
                     noise_seed: Sequence[int]) -> np.ndarray:
    """Turn eSpeak output into a corpus clip.

    Resamples ``(T,)`` int16 at 22,050 Hz to 16 kHz (``resample_poly``,
    320 / 441), trims silence at both ends to a 0.1 s margin, scales the
    peak to ``peak`` of full scale and adds white Gaussian noise at
    ``snr_db`` dB below the clip's mean power (seeded by ``noise_seed``).

    Returns:
        np.ndarray: int16 ``(T',)`` at 16 kHz.
    """
    from scipy.signal import resample_poly

    if len(wave) == 0:
        return np.zeros(0, np.int16)
    # the input's scale does not matter: the peak is set below
    x = resample_poly(wave.astype(np.float64), 320, 441)
    top = np.abs(x).max()
    if top == 0:  # silence stays silence
        return np.zeros(len(x), np.int16)
    loud = np.flatnonzero(np.abs(x) > 0.01 * top)
    margin = AUDIO_RATE // 10
    x = x[max(0, loud[0] - margin):loud[-1] + margin + 1] * (peak / top)
    power = float(np.mean(x**2))
    rng = np.random.default_rng(list(noise_seed))
    x = x + rng.normal(0., np.sqrt(power / 10**(snr_db / 10.)), len(x))
    return np.round(np.clip(x, -1., 32767 / 32768.) * 32768.).astype(np.int16)


def synthesize_jobs(jobs: Sequence[Dict]) -> List[int]:
    """Synthesise and write each job's clip, in order, in this process.

    Each job is a dict with ``path`` (the WAV file to write), ``text``,
    ``voice``, ``rate``, ``pitch``, ``synth_seed`` (optional), ``peak``,
    ``snr_db`` and ``noise_seed`` (see :meth:`ESpeak.synth` and
    :func:`render_utterance`).

    Returns:
        list[int]: the number of samples of each clip.
    """
    import soundfile
    engine = ESpeak()
    lengths = []
    for job in jobs:
        wave = engine.synth(job['text'], job['voice'], job['rate'],
                            job['pitch'], job.get('synth_seed', 0))
        clip = render_utterance(wave, job['peak'], job['snr_db'],
                                job['noise_seed'])
        os.makedirs(osp.dirname(job['path']), exist_ok=True)
        soundfile.write(
            job['path'], clip, AUDIO_RATE, subtype='PCM_16', format='WAV')
        lengths.append(int(len(clip)))
    return lengths


def synthesize_in_subprocess(jobs: Sequence[Dict]) -> List[int]:
    """:func:`synthesize_jobs` in a fresh Python process (so that the
    clips depend on the job list only, not on what this process spoke
    before).

    Returns:
        list[int]: the number of samples of each clip.

    Raises:
        ImportError / RuntimeError: as :class:`ESpeak`, re-raised with the
            child's message.
    """
    if not jobs:
        return []
    code = ('import runpy, sys; sys.path.pop(0); '
            f'runpy.run_path({osp.abspath(__file__)!r}, '
            'run_name="__main__")')
    env = dict(os.environ, OMP_NUM_THREADS='1', OPENBLAS_NUM_THREADS='1')
    proc = subprocess.run([sys.executable, '-c', code],
                          input=json.dumps(list(jobs)),
                          capture_output=True,
                          text=True,
                          env=env)
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        message = lines[-1] if lines else f'exit status {proc.returncode}'
        kind = ImportError if message.startswith(('ImportError',
                                                  'ModuleNotFound')) \
            else RuntimeError
        raise kind(f'speech synthesis failed: {message}')
    lengths = json.loads(proc.stdout.strip().splitlines()[-1])
    if len(lengths) != len(jobs):
        raise RuntimeError(f'speech synthesis wrote {len(lengths)} of '
                           f'{len(jobs)} clips')
    return lengths


if __name__ == '__main__':
    print(json.dumps(synthesize_jobs(json.load(sys.stdin))))
