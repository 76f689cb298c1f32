# Copyright (c) mmssl contributors. All rights reserved.
"""SentencePiece tokenizer: trained offline, loaded from a file.

:func:`train_sentencepiece` (or ``tools/misc/train_tokenizer.py``) trains a
model from plain-text files and writes ``<prefix>.model`` / ``.vocab``;
:class:`SentencePieceTokenizer` loads it. The special pieces have ALBERT's
fixed ids, which the data sets and models rely on::

    0 '<pad>'   1 '<unk>'   2 '[CLS]'   3 '[SEP]'   4 '[MASK]'

(``[CLS]``, ``[SEP]`` and ``[MASK]`` are user-defined pieces; there is no
``<s>`` / ``</s>``.) Training is deterministic for the same files, options
and seed: one thread, all input sentences read in file order (no sampling
or shuffling) and SentencePiece's random generator seeded.
"""
import os
import os.path as osp
import string
from typing import Dict, List, Optional, Sequence, Union

import numpy as np

from mmssl.utils.validation import check_choice, check_int

__all__ = [
    'SPECIAL_TOKENS', 'PAD_ID', 'UNK_ID', 'CLS_ID', 'SEP_ID', 'MASK_ID',
    'train_sentencepiece', 'SentencePieceTokenizer', 'check_vocab_size',
    'build_tokenizer', 'TRAIN_TOOL'
]

#: Special pieces and their ids (ALBERT's layout).
SPECIAL_TOKENS: Dict[str, int] = {
    '<pad>': 0,
    '<unk>': 1,
    '[CLS]': 2,
    '[SEP]': 3,
    '[MASK]': 4
}
PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID = range(5)
TRAIN_TOOL = 'tools/misc/train_tokenizer.py'
_MODEL_TYPES = ('unigram', 'bpe', 'char', 'word')
# ALBERT's ``_is_start_piece``: single punctuation pieces start a word too.
_PUNCTUATION = frozenset(string.punctuation)
WORD_START = '\u2581'  # '▁', SentencePiece's word-boundary mark


def _spm():
    try:
        import sentencepiece
    except ImportError as err:  # pragma: no cover
        raise ImportError('the text data sets need the sentencepiece '
                          'package: pip install sentencepiece') from err
    return sentencepiece


def train_sentencepiece(corpus_files: Union[str, Sequence[str]],
                        model_prefix: str,
                        vocab_size: int,
                        model_type: str = 'unigram',
                        lower_case: bool = True,
                        character_coverage: float = 0.9995,
                        max_sentence_length: int = 8192,
                        seed: int = 0,
                        **options) -> str:
    """Train a SentencePiece model with the special ids of this module.

    Args:
        corpus_files (str | Sequence[str]): plain-text files, one sentence
            per line (blank lines are ignored).
        model_prefix (str): output prefix; writes ``<prefix>.model`` and
            ``<prefix>.vocab`` (folders are created).
        vocab_size (int): number of pieces, the 5 special ones included
            (ALBERT: 30000; a few thousand for the embedded corpus).
        model_type (str): ``'unigram'`` (ALBERT), ``'bpe'``, ``'char'`` or
            ``'word'``. Defaults to ``'unigram'``.
        lower_case (bool): fold case in the model's normaliser
            (``nmt_nfkc_cf``), so every text it encodes is lower-cased the
            same way (ALBERT's models are uncased). Defaults to True.
        character_coverage (float): SentencePiece's option.
            Defaults to 0.9995.
        max_sentence_length (int): longest line in bytes; longer lines are
            skipped by SentencePiece. Defaults to 8192.
        seed (int): SentencePiece's random seed. Defaults to 0.
        **options: other ``SentencePieceTrainer`` options (override).

    Returns:
        str: the path of the ``.model`` file.

    Raises:
        FileNotFoundError: a corpus file does not exist.
        ValueError: bad arguments, or SentencePiece refuses the corpus
            (too small for ``vocab_size``: lower it).
    """
    owner = 'train_sentencepiece'
    files = [corpus_files] if isinstance(corpus_files,
                                         str) else list(corpus_files)
    if not files:
        raise ValueError(f'{owner}: corpus_files is empty')
    for path in files:
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'{owner}: corpus file {path!r} does not exist')
        if osp.getsize(path) == 0:
            raise ValueError(f'{owner}: corpus file {path!r} is empty')
    vocab_size = check_int(
        vocab_size, 'vocab_size', owner, minimum=len(SPECIAL_TOKENS) + 1)
    check_choice(model_type, 'model_type', owner, _MODEL_TYPES)
    seed = check_int(seed, 'seed', owner, minimum=0)
    folder = osp.dirname(osp.abspath(model_prefix))
    os.makedirs(folder, exist_ok=True)
    spm = _spm()
    kwargs = dict(
        input=files,
        model_prefix=model_prefix,
        vocab_size=vocab_size,
        model_type=model_type,
        character_coverage=character_coverage,
        pad_id=PAD_ID,
        unk_id=UNK_ID,
        bos_id=-1,
        eos_id=-1,
        pad_piece='<pad>',
        unk_piece='<unk>',
        user_defined_symbols=['[CLS]', '[SEP]', '[MASK]'],
        normalization_rule_name='nmt_nfkc_cf' if lower_case else 'nmt_nfkc',
        num_threads=1,
        input_sentence_size=0,
        shuffle_input_sentence=False,
        max_sentence_length=max_sentence_length,
        minloglevel=2)
    kwargs.update(options)
    spm.set_random_generator_seed(seed)
    try:
        spm.SentencePieceTrainer.train(**kwargs)
    except RuntimeError as err:
        raise ValueError(
            f'{owner}: SentencePiece could not train a {vocab_size}-piece '
            f'{model_type} model on {files}: {err}; lower vocab_size or give '
            'a larger corpus') from None
    return f'{model_prefix}.model'


class SentencePieceTokenizer:
    """A trained SentencePiece model with ALBERT's special ids.

    Args:
        model_file (str): the ``.model`` file written by
            :func:`train_sentencepiece` / ``tools/misc/train_tokenizer.py``.

    Attributes:
        vocab_size (int): number of pieces ``V``.
        pad_id, unk_id, cls_id, sep_id, mask_id (int): 0, 1, 2, 3, 4.
        special_ids (tuple[int]): the five special ids.
        word_start_table (np.ndarray): ``(V,)`` bool, whether each piece
            starts a word (ALBERT's rule: it begins with ``'▁'``, is a single
            punctuation character, or is a special piece).

    Raises:
        FileNotFoundError: ``model_file`` does not exist (names the tool
            that makes one).
        ValueError: the file is not a SentencePiece model, or its special
            pieces are not at the ids above.
    """

    pad_id, unk_id, cls_id, sep_id, mask_id = PAD_ID, UNK_ID, CLS_ID, \
        SEP_ID, MASK_ID
    special_ids = tuple(SPECIAL_TOKENS.values())

    def __init__(self, model_file: str) -> None:
        self.model_file = str(model_file)
        if not osp.isfile(self.model_file):
            raise FileNotFoundError(
                f'tokenizer model {self.model_file!r} does not exist; train '
                f'one with python {TRAIN_TOOL} CORPUS.txt --out-prefix '
                f'{osp.splitext(self.model_file)[0]} --vocab-size N (or '
                'mmssl.datasets.train_sentencepiece)')
        spm = _spm()
        self.sp = spm.SentencePieceProcessor()
        try:
            self.sp.Load(self.model_file)
        except (OSError, RuntimeError) as err:
            raise ValueError(
                f'tokenizer model {self.model_file!r} is not a SentencePiece '
                f'model ({err}); train one with {TRAIN_TOOL}') from None
        for piece, idx in SPECIAL_TOKENS.items():
            if idx >= self.sp.GetPieceSize() or self.sp.IdToPiece(
                    idx) != piece:
                found = (
                    self.sp.IdToPiece(idx)
                    if idx < self.sp.GetPieceSize() else None)
                raise ValueError(
                    f'tokenizer model {self.model_file!r} has {found!r} at id '
                    f'{idx}, expected {piece!r} (special ids: '
                    f'{SPECIAL_TOKENS}); retrain it with {TRAIN_TOOL}')
        self.vocab_size = int(self.sp.GetPieceSize())
        pieces = [self.sp.IdToPiece(i) for i in range(self.vocab_size)]
        self.word_start_table = np.array([
            p.startswith(WORD_START) or p in _PUNCTUATION
            or i in self.special_ids for i, p in enumerate(pieces)
        ],
                                         dtype=bool)

    def __len__(self) -> int:
        return self.vocab_size

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(model_file={self.model_file!r}, '
                f'vocab_size={self.vocab_size})')

    def __getstate__(self) -> dict:  # SentencePieceProcessor: reload
        state = dict(self.__dict__)
        state.pop('sp')
        return state

    def __setstate__(self, state: dict) -> None:
        self.__init__(state['model_file'])

    def encode(
            self,
            text: Union[str,
                        Sequence[str]]) -> Union[List[int], List[List[int]]]:
        """Token ids of ``text`` (a list of texts: one list each), without
        special tokens."""
        if isinstance(text, str):
            return self.sp.EncodeAsIds(text)
        return self.sp.Encode(list(text), out_type=int)

    def tokenize(self, text: str) -> List[str]:
        """The pieces of ``text``."""
        return self.sp.EncodeAsPieces(text)

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids`` (special pieces other than ``<unk>`` dropped)."""
        ids = [int(i) for i in ids]
        return self.sp.DecodeIds(
            [i for i in ids if i == UNK_ID or i not in self.special_ids])

    def id_to_piece(self, idx: int) -> str:
        return self.sp.IdToPiece(int(idx))

    def piece_to_id(self, piece: str) -> int:
        return int(self.sp.PieceToId(piece))

    def word_starts(self, ids: Sequence[int]) -> np.ndarray:
        """``(T,)`` bool: whether each token starts a whole word."""
        return self.word_start_table[np.asarray(ids, dtype=np.int64)]


def build_tokenizer(tokenizer: Union[str, dict, SentencePieceTokenizer],
                    data_root: str = '') -> SentencePieceTokenizer:
    """A tokenizer from a model path, ``dict(model_file=...)`` or an
    instance.

    A path not found as given is looked up under ``data_root`` (the data
    set's folder), as mmengine data sets do with ``ann_file``.
    """
    if isinstance(tokenizer, str) and not osp.isfile(tokenizer) \
            and data_root:
        under = osp.join(data_root, tokenizer)
        if not osp.isfile(under):
            raise FileNotFoundError(
                f'tokenizer model {tokenizer!r} is neither a file nor one '
                f'under data_root={data_root!r} ({under!r}); give its path, '
                f'or train one with python {TRAIN_TOOL} CORPUS.txt '
                '--out-prefix PREFIX --vocab-size N')
        tokenizer = under
    if isinstance(tokenizer, SentencePieceTokenizer):
        return tokenizer
    if isinstance(tokenizer, dict):
        cfg = dict(tokenizer)
        cfg.pop('type', None)
        return SentencePieceTokenizer(**cfg)
    if isinstance(tokenizer, (str, os.PathLike)):
        return SentencePieceTokenizer(str(tokenizer))
    raise ValueError('tokenizer must be the path of a SentencePiece .model '
                     f'file, got {tokenizer!r}')


def check_vocab_size(tokenizer: Union[SentencePieceTokenizer, int],
                     expected: int,
                     where: Optional[str] = None) -> None:
    """Raise if the tokenizer's vocabulary size is not the model's.

    Args:
        tokenizer (SentencePieceTokenizer | int): the tokenizer (or its
            vocabulary size).
        expected (int): the model's vocabulary size (embedding rows).
        where (str, optional): what holds ``expected`` (a config key or a
            checkpoint file), named in the message.

    Raises:
        ValueError: the sizes differ; the message names the tokenizer file,
            both sizes and the two fixes.
    """
    if isinstance(tokenizer, SentencePieceTokenizer):
        size, name = tokenizer.vocab_size, repr(tokenizer.model_file)
    else:
        size, name = int(tokenizer), 'the tokenizer'
    if size != int(expected):
        origin = f' ({where})' if where else ''
        raise ValueError(
            f'tokenizer {name} has {size} pieces but the model{origin} has '
            f'vocab_size={expected}; use the tokenizer the model was trained '
            f'with, or set the model\'s vocab_size={size} (or retrain the '
            f'tokenizer with {TRAIN_TOOL} --vocab-size {expected})')
