# Copyright (c) mmssl contributors. All rights reserved.
"""The character vocabulary of CTC speech recognition.

Ids: ``0`` is the CTC blank ``<blank>``, ``1`` the word boundary ``|``
(a space of the transcript, as fairseq's letter targets write it), then
``A``-``Z`` and the apostrophe: 29 symbols for LibriSpeech-style
transcripts. A vocabulary file holds one symbol a line, optionally
followed by a count (fairseq's ``dict.ltr.txt`` loads as it is; the blank
is put in front when the file does not start with it).
"""
import os
import os.path as osp
import string
from typing import Iterable, List, Optional, Sequence, Union

from mmssl.registry import TASK_UTILS

__all__ = ['CharCTCVocab', 'BLANK', 'WORD_BOUNDARY', 'DEFAULT_CHARS']

BLANK = '<blank>'
WORD_BOUNDARY = '|'
#: The symbols after the blank, in id order.
DEFAULT_CHARS = (WORD_BOUNDARY, ) + tuple(string.ascii_uppercase) + ("'", )


@TASK_UTILS.register_module()
class CharCTCVocab:
    """Characters <-> ids for CTC (``mmssl.CharCTCVocab``).

    Args:
        chars (Sequence[str], optional): the symbols after the blank, in
            id order; single characters, or ``|`` for the word boundary.
            None (the default) for :data:`DEFAULT_CHARS`.

    Example:
        >>> vocab = CharCTCVocab()
        >>> vocab.encode("IT'S A")
        [10, 21, 28, 20, 1, 2]
        >>> vocab.decode([10, 21, 28, 20, 1, 2])
        "IT'S A"
    """

    blank_id = 0

    def __init__(self, chars: Optional[Sequence[str]] = None) -> None:
        chars = DEFAULT_CHARS if chars is None else tuple(chars)
        if chars and chars[0] == BLANK:
            chars = chars[1:]
        bad = [c for c in chars if not isinstance(c, str) or len(c) != 1]
        if bad or not chars:
            raise ValueError(
                'mmssl.CharCTCVocab: chars must be single characters (the '
                f'blank {BLANK!r} is added as id 0), got {bad or chars!r}')
        if len(set(chars)) != len(chars) or ' ' in chars:
            raise ValueError(
                'mmssl.CharCTCVocab: chars must be distinct and hold no '
                f"space (write the word boundary as '|'), got {chars!r}")
        self.symbols: List[str] = [BLANK, *chars]
        self._ids = {c: i for i, c in enumerate(self.symbols)}
        self.word_boundary_id = self._ids.get(WORD_BOUNDARY)

    def __len__(self) -> int:
        return len(self.symbols)

    def __repr__(self) -> str:
        return f'CharCTCVocab({"".join(self.symbols[1:])!r})'

    def __eq__(self, other) -> bool:
        return isinstance(other, CharCTCVocab) and \
            other.symbols == self.symbols

    def encode(self, text: str, source: Optional[str] = None) -> List[int]:
        """Ids of ``text``; a space maps to ``|``.

        Args:
            text (str): the transcript.
            source (str, optional): where the text comes from (a file),
                named in errors.

        Raises:
            ValueError: a character is not in the vocabulary (the message
                names it and its position).
        """
        ids = []
        for pos, char in enumerate(text):
            key = WORD_BOUNDARY if char == ' ' and \
                self.word_boundary_id is not None else char
            idx = self._ids.get(key)
            if idx is None or idx == self.blank_id:
                where = f' of {source}' if source else ''
                hint = ' (upper-case the transcripts)' if \
                    char.upper() in self._ids else ''
                raise ValueError(
                    f'transcript{where} {text!r}: character {char!r} at '
                    f'position {pos} is not in the vocabulary '
                    f'{"".join(self.symbols[1:])!r}; remove or map it in '
                    f'the transcripts{hint}, or give a vocabulary file '
                    'that holds it')
            ids.append(idx)
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ``ids`` (``|`` becomes a space; blanks are dropped;
        spaces at the ends and repeated spaces are removed)."""
        out = []
        for i in ids:
            i = int(i)
            if not 0 <= i < len(self.symbols):
                raise ValueError(f'CharCTCVocab.decode: id {i} is outside '
                                 f'[0, {len(self.symbols) - 1}]')
            if i != self.blank_id:
                sym = self.symbols[i]
                out.append(' ' if sym == WORD_BOUNDARY else sym)
        return ' '.join(''.join(out).split())

    def save(self, path: str) -> None:
        """Write one symbol a line (the blank first)."""
        folder = osp.dirname(osp.abspath(path))
        os.makedirs(folder, exist_ok=True)
        with open(path, 'w', encoding='utf-8', newline='\n') as f:
            f.writelines(s + '\n' for s in self.symbols)

    @classmethod
    def from_file(cls, path: str) -> 'CharCTCVocab':
        """Read a vocabulary file: the first field of each non-empty line
        is a symbol (fairseq's ``symbol count`` lines load too)."""
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'CharCTCVocab: vocabulary file {path!r} does not exist; '
                'write one with CharCTCVocab().save(path) or use '
                "fairseq's dict.ltr.txt")
        with open(path, encoding='utf-8') as f:
            symbols = [ln.split()[0] for ln in f if ln.strip()]
        bad = [s for s in symbols if s != BLANK and len(s) != 1]
        if bad:
            raise ValueError(
                f'CharCTCVocab: vocabulary file {path!r} holds symbols that '
                f'are not single characters: {bad[:5]}; one character (or '
                f'{BLANK!r}) per line')
        return cls(symbols)

    @classmethod
    def build(cls, vocab: Union[None, str, dict,
                                'CharCTCVocab']) -> 'CharCTCVocab':
        """A vocabulary from None (the default one), a file path, a config
        dict (``chars=...``, an optional ``type``) or an instance."""
        if vocab is None:
            return cls()
        if isinstance(vocab, CharCTCVocab):
            return vocab
        if isinstance(vocab, str):
            return cls.from_file(vocab)
        if isinstance(vocab, dict):
            return cls(**{k: v for k, v in vocab.items() if k != 'type'})
        raise TypeError('vocab must be None, a vocabulary file path, a '
                        f'config dict or a CharCTCVocab, got {vocab!r}')
