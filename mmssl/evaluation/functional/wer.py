# Copyright (c) mmssl contributors. All rights reserved.
"""Word and character error rates of speech recognition.

Errors are the Levenshtein distance (substitutions + deletions +
insertions, each costing 1) between reference and hypothesis; corpus
rates divide the summed errors by the summed reference lengths, so long
utterances weigh more (as ``sclite`` and fairseq report them). Words are
the whitespace-separated tokens; characters are those of the words joined
by single spaces (spaces count as characters).
"""
from typing import Sequence, Tuple

__all__ = ['edit_distance', 'word_errors', 'char_errors', 'wer', 'cer']


def edit_distance(a: Sequence, b: Sequence) -> int:
    """Levenshtein distance between two sequences (of words, characters,
    ids, ...): the fewest substitutions, deletions and insertions that turn
    ``a`` into ``b``."""
    a, b = list(a), list(b)
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, start=1):
        cur = [i]
        for j, y in enumerate(b, start=1):
            cur.append(
                min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def word_errors(ref: str, hyp: str) -> Tuple[int, int]:
    """``(errors, reference words)`` of one utterance."""
    ref_words = ref.split()
    return edit_distance(ref_words, hyp.split()), len(ref_words)


def char_errors(ref: str, hyp: str) -> Tuple[int, int]:
    """``(errors, reference characters)`` of one utterance."""
    ref_chars = ' '.join(ref.split())
    return edit_distance(ref_chars, ' '.join(hyp.split())), len(ref_chars)


def _corpus_rate(refs: Sequence[str], hyps: Sequence[str], count,
                 unit: str) -> float:
    if isinstance(refs, str) or isinstance(hyps, str):
        raise TypeError(f'{unit} error rate: refs and hyps must be lists '
                        'of strings, not a single string')
    if len(refs) != len(hyps):
        raise ValueError(f'{unit} error rate: {len(refs)} references but '
                         f'{len(hyps)} hypotheses')
    errors = total = 0
    for ref, hyp in zip(refs, hyps):
        e, n = count(ref, hyp)
        errors += e
        total += n
    if total == 0:
        raise ValueError(f'{unit} error rate: the references hold no '
                         f'{unit}s; it is undefined for empty references')
    return errors / total


def wer(refs: Sequence[str], hyps: Sequence[str]) -> float:
    """Corpus word error rate (a fraction: 0.5 is 50 %): summed word
    errors over summed reference words."""
    return _corpus_rate(refs, hyps, word_errors, 'word')


def cer(refs: Sequence[str], hyps: Sequence[str]) -> float:
    """Corpus character error rate (a fraction), as :func:`wer` on
    characters."""
    return _corpus_rate(refs, hyps, char_errors, 'character')
