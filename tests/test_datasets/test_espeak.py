# Copyright (c) mmssl contributors. All rights reserved.
"""eSpeak NG's parameters and the rendering of its output into clips."""
import numpy as np
import pytest

from mmssl.datasets.espeak import (AUDIO_RATE, ESPEAK_RATE, ESpeak,
                                   render_utterance)


@pytest.fixture(scope='module')
def espeak():
    return ESpeak()


def _crossings(x):
    return float(np.mean(np.abs(np.diff(np.sign(x))) > 0))


def test_rate_and_pitch_reach_the_synthesiser(espeak):
    text = 'the cat sat on the mat'
    slow = espeak.synth(text, 'en-us', 100, 50)
    fast = espeak.synth(text, 'en-us', 300, 50)
    assert slow.dtype == np.int16 and slow.ndim == 1
    assert len(fast) < 0.6 * len(slow)
    low = espeak.synth('aaaa', 'en-us', 150, 10)
    high = espeak.synth('aaaa', 'en-us', 150, 90)
    assert _crossings(high) > 1.2 * _crossings(low)
    with pytest.raises(ValueError, match='no voice'):
        espeak.synth(text, 'no-such-voice', 150, 50)


def _tone(seconds, amplitude, freq=440.):
    t = np.arange(int(seconds * ESPEAK_RATE)) / ESPEAK_RATE
    return amplitude * np.sin(2 * np.pi * freq * t)


def test_render_resamples_trims_and_scales():
    """22,050 Hz in, 16 kHz out; silence trimmed to 0.1 s around what is
    louder than 1 % of the peak; the peak set to ``peak``."""
    silence = np.zeros(int(0.5 * ESPEAK_RATE))
    tone = _tone(0.4, 20000.)
    wave = np.concatenate([silence, tone, silence]).astype(np.int16)
    clip = render_utterance(wave, peak=0.5, snr_db=200., noise_seed=[0])
    assert clip.dtype == np.int16
    expected = round(len(tone) * AUDIO_RATE / ESPEAK_RATE) + 2 * (
        AUDIO_RATE // 10)
    assert abs(len(clip) - expected) < 10
    assert abs(int(np.abs(clip).max()) - 0.5 * 32768) < 40
    # a quiet burst at 1.5 % of the peak, 0.2 s before the tone, is kept
    burst = silence.copy()
    burst[-int(0.2 * ESPEAK_RATE):][:400] = _tone(400 / ESPEAK_RATE, 300.)
    wave = np.concatenate([burst, tone, silence]).astype(np.int16)
    longer = render_utterance(wave, peak=0.5, snr_db=200., noise_seed=[0])
    assert abs(len(longer) - expected - 0.2 * AUDIO_RATE) < 10
    # a burst below 1 % is trimmed away
    wave = np.concatenate([burst * 0.5, tone, silence]).astype(np.int16)
    same = render_utterance(wave, peak=0.5, snr_db=200., noise_seed=[0])
    assert abs(len(same) - expected) < 10


def test_render_noise_level_and_seed():
    wave = _tone(0.5, 10000.).astype(np.int16)
    quiet = render_utterance(wave, 0.5, 200., [1]).astype(np.float64)
    noisy = render_utterance(wave, 0.5, 0., [1]).astype(np.float64)
    signal_power = np.mean(quiet**2)
    noise_power = np.mean((noisy - quiet)**2)
    assert noise_power == pytest.approx(signal_power, rel=0.1)  # 0 dB
    again = render_utterance(wave, 0.5, 0., [1])
    other = render_utterance(wave, 0.5, 0., [2])
    assert np.array_equal(again, noisy.astype(np.int16))
    assert not np.array_equal(other, again)
    # 10 dB: a tenth of the power
    noisy = render_utterance(wave, 0.5, 10., [1]).astype(np.float64)
    assert np.mean((noisy - quiet)**2) == pytest.approx(
        signal_power / 10, rel=0.1)
    # all silence stays silence (its length resampled); nothing stays nothing
    silent = render_utterance(np.zeros(2205, np.int16), 0.5, 10., [0])
    assert silent.shape == (1600, ) and not silent.any()
    assert render_utterance(np.zeros(0, np.int16), 0.5, 10.,
                            [0]).shape == (0, )


def test_render_margins_exactly():
    """0.1 s (1600 samples) before the first and after the last sample
    louder than 1 % of the peak; a clip loud from its first to its last
    sample keeps every resampled sample; a quiet one is scaled up too."""
    silence = np.zeros(int(0.5 * ESPEAK_RATE))
    wave = np.concatenate([silence, _tone(0.4, 20000.), silence])
    clip = render_utterance(wave.astype(np.int16), 0.5, 200., [0])
    loud = np.flatnonzero(np.abs(clip) > 0.01 * np.abs(clip).max())
    assert loud[0] == 1600 and loud[-1] == len(clip) - 1601
    full = render_utterance(
        _tone(0.4, 20000., freq=100.).astype(np.int16), 0.5, 200., [0])
    assert len(full) == 0.4 * AUDIO_RATE
    quiet = render_utterance(
        np.round(_tone(0.1, 2.)).astype(np.int16), 0.5, 200., [0])
    assert abs(int(np.abs(quiet).max()) - 0.5 * 32768) <= 1


def _job(path, **extra):
    job = dict(
        path=str(path),
        text='a breathy hello',
        voice='en+whisper',
        rate=150,
        pitch=50,
        peak=0.5,
        snr_db=30.,
        noise_seed=[0])
    job.update(extra)
    return job


def test_subprocess_synthesis_seeds_and_errors(tmp_path):
    """A fresh process per job list: the same jobs give the same clips, the
    synthesiser's seed defaults to 0, and a failure in the child is raised
    with the child's own message."""
    import soundfile

    from mmssl.datasets.espeak import synthesize_in_subprocess
    assert synthesize_in_subprocess([]) == []
    jobs = [
        _job(tmp_path / 'default.wav'),
        _job(tmp_path / 'zero.wav', synth_seed=0)
    ]
    first = synthesize_in_subprocess(jobs[:1])
    second = synthesize_in_subprocess(jobs[1:])
    assert first == second and first[0] > AUDIO_RATE // 2
    a, rate = soundfile.read(str(tmp_path / 'default.wav'), dtype='int16')
    b, _ = soundfile.read(str(tmp_path / 'zero.wav'), dtype='int16')
    assert rate == AUDIO_RATE and np.array_equal(a, b)
    # the whispered voice draws from the seed: another one changes the clip
    synthesize_in_subprocess([_job(tmp_path / 'one.wav', synth_seed=1)])
    c, _ = soundfile.read(str(tmp_path / 'one.wav'), dtype='int16')
    assert not np.array_equal(a, c)
    with pytest.raises(RuntimeError, match="ValueError: .*no voice 'zz-q'"):
        synthesize_in_subprocess([_job(tmp_path / 'x.wav', voice='zz-q')])
