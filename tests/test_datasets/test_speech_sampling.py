# Copyright (c) mmssl contributors. All rights reserved.
"""What the embedded speech clips say and how: the ranges and shares of
:func:`sample_utterance` over many draws (pure, no synthesis)."""
import numpy as np
import pytest

from mmssl.datasets.embedded_speech import (SPEECH_SPLITS, SPEECH_VARIANTS,
                                            SPEECH_VOICES, _ltr,
                                            sample_utterance)

DIGITS = ('ZERO', 'ONE', 'TWO', 'THREE', 'FOUR', 'FIVE', 'SIX', 'SEVEN',
          'EIGHT', 'NINE')


@pytest.fixture(scope='module')
def draws():
    return [sample_utterance(0, 'train', i) for i in range(3000)]


def test_ranges_are_inclusive_and_reached(draws):
    rates = [u['rate'] for u in draws]
    pitches = [u['pitch'] for u in draws]
    assert (min(rates), max(rates)) == (130, 200)
    assert (min(pitches), max(pitches)) == (25, 75)
    peaks = np.array([u['peak'] for u in draws])
    snrs = np.array([u['snr_db'] for u in draws])
    assert 0.3 <= peaks.min() < 0.31 and 0.89 < peaks.max() <= 0.9
    assert 10 <= snrs.min() < 10.1 and 29.9 < snrs.max() <= 30
    assert all(round(p, 4) == p for p in peaks)
    assert all(round(s, 3) == s for s in snrs)
    seeds = [u['synth_seed'] for u in draws]
    assert min(seeds) >= 0 and max(seeds) < 2**31
    assert max(seeds) > 2**30  # drawn from the full range


def test_half_digit_strings_of_3_to_7_digits(draws):
    digit = [u for u in draws if u['transcript'].split()[0] in DIGITS]
    assert 0.45 < len(digit) / len(draws) < 0.55
    lengths = {len(u['transcript'].split()) for u in digit}
    assert lengths == {3, 4, 5, 6, 7}
    assert all(set(u['transcript'].split()) <= set(DIGITS) for u in digit)


def test_sentences_and_their_optional_tail(draws):
    """Four sentence shapes; the first three get a time phrase 40 % of the
    time, the fourth always ends with one."""
    tails = ('TODAY', 'LAST NIGHT', 'IN THE MORNING', 'AT HOME',
             'NEAR THE RIVER', 'AFTER LUNCH', 'ON MONDAY')
    starts = ("IT'S", "THAT'S", "HERE'S", "THERE'S")
    sentences = [
        u['transcript'] for u in draws
        if u['transcript'].split()[0] not in DIGITS
    ]
    short = [s for s in sentences if s.split()[0] in starts]
    with_tail = [s for s in short if s.endswith(tails)]
    # "IT'S <det> <adj> <thing>" (+ a tail with probability 0.4)
    assert all(len(s.split()) == 4 for s in short if s not in with_tail)
    assert 0.3 < len(with_tail) / len(short) < 0.5
    assert 0.2 < len(short) / len(sentences) < 0.3  # one shape of four
    # "<subject> DIDN'T FIND <object>" (+ a tail with probability 0.4)
    negs = ("DIDN'T", "DOESN'T", "CAN'T", "WON'T", "ISN'T")
    neg = [s for s in sentences if s.split()[3] in negs]
    neg_tail = [s for s in neg if s.endswith(tails)]
    assert 0.2 < len(neg) / len(sentences) < 0.3
    assert 0.3 < len(neg_tail) / len(neg) < 0.5
    assert all(len(s.split()) == 8 for s in neg if s not in neg_tail)
    # "<subject> SAW <object>": with a tail 40 % of the time, and a shape of
    # its own that always has one: 0.4 / 2 + 1 / 2 = 70 %
    verb = [s for s in sentences if s not in short and s not in neg]
    verb_tail = [s for s in verb if s.endswith(tails)]
    assert 0.45 < len(verb) / len(sentences) < 0.55
    assert 0.62 < len(verb_tail) / len(verb) < 0.78
    assert all(len(s.split()) == 7 for s in verb if s not in verb_tail)


def test_voices_text_and_noise_seed(draws):
    voices = {u['voice'] for u in draws}
    accents = {v.split('+')[0] for v in voices}
    variants = {v.split('+')[1] if '+' in v else '' for v in voices}
    assert accents == set(SPEECH_VOICES)
    assert variants == set(SPEECH_VARIANTS)  # '' is the bare accent
    assert all(not v.endswith('+') for v in voices)
    u = sample_utterance(7, 'val', 12)
    assert u['text'] == u['transcript'].lower()
    assert u['noise_seed'] == [7, SPEECH_SPLITS.index('val'), 12, 1]
    assert sample_utterance(7, 'test', 12) != u


def test_letter_targets_by_hand():
    assert _ltr('A CAT') == 'A | C A T |'
    assert _ltr("IT'S") == "I T ' S |"
