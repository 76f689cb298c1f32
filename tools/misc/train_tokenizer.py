# Copyright (c) mmssl contributors. All rights reserved.
"""Train a SentencePiece tokenizer with ALBERT's special ids.

Example::

    python tools/misc/train_tokenizer.py data/embedded_text/train.txt \\
        --out-prefix data/embedded_text/spm_4k --vocab-size 4000
    python tools/misc/train_tokenizer.py --embedded data/embedded_text \\
        --out-prefix data/embedded_text/spm_4k --vocab-size 4000

Writes ``<out-prefix>.model`` and ``.vocab`` (pad 0, unk 1, [CLS] 2,
[SEP] 3, [MASK] 4); the same corpus, options and seed give the same
vocabulary. Keep the model file beside the checkpoints trained with it.
"""
import argparse
import os.path as osp
import sys
import time

from mmssl.datasets.text_corpus import make_embedded_corpus, read_documents
from mmssl.datasets.tokenizer import (SentencePieceTokenizer,
                                      train_sentencepiece)
from mmssl.engine.tool_errors import ToolError, tool_main


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Train a SentencePiece tokenizer (ALBERT special ids) '
        'from plain-text files, one sentence per line.')
    parser.add_argument('corpus', nargs='*', help='plain-text corpus files')
    parser.add_argument(
        '--embedded',
        metavar='ROOT',
        help='make (or reuse) the embedded docstring corpus under ROOT and '
        'train on its train split')
    parser.add_argument(
        '--out-prefix', required=True, help='writes PREFIX.model/.vocab')
    parser.add_argument('--vocab-size', type=int, required=True)
    parser.add_argument(
        '--model-type',
        default='unigram',
        choices=('unigram', 'bpe', 'char', 'word'))
    parser.add_argument(
        '--cased',
        action='store_true',
        help='keep case (default: the model lower-cases)')
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args(argv)


@tool_main
def main(argv=None) -> int:
    args = parse_args(argv)
    files = list(args.corpus)
    if args.embedded:
        files.append(make_embedded_corpus(args.embedded)['files']['train'])
    if not files:
        raise ToolError('give corpus files or --embedded ROOT')
    if args.vocab_size < 6:
        raise ToolError(f'--vocab-size must be >= 6 (5 special pieces), got '
                        f'{args.vocab_size}')
    for path in files:
        try:
            read_documents(path)  # empty / binary / missing: clear errors
        except (ValueError, FileNotFoundError) as err:
            raise ToolError(str(err)) from None
    size = sum(osp.getsize(p) for p in files)
    print(f'training a {args.vocab_size}-piece {args.model_type} tokenizer '
          f'on {len(files)} file(s), {size / 1e6:.2f} MB ...')
    start = time.time()
    try:
        model = train_sentencepiece(
            files,
            args.out_prefix,
            args.vocab_size,
            model_type=args.model_type,
            lower_case=not args.cased,
            seed=args.seed)
    except ValueError as err:
        raise ToolError(str(err)) from None
    tok = SentencePieceTokenizer(model)
    print(f'wrote {model} ({tok.vocab_size} pieces) in '
          f'{time.time() - start:.1f} s')
    return 0


if __name__ == '__main__':
    sys.exit(main())
