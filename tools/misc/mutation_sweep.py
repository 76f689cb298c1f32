# Copyright (c) mmssl contributors. All rights reserved.
"""Single-line mutation sweep of source files against their tests.

Every mutable token of FILES (operators, comparisons, booleans, numbers,
reductions, ``detach``; see :mod:`mmssl.testing.mutation`) is changed in
turn and the TESTS are run with ``pytest -x``; the survivors are the lines
no test checks (or equivalent changes). Files are changed in place under
``--root`` and put back after each run, so sweep a copy of the
repository, e.g.::

    git worktree add ../mmssl-sweep HEAD
    python tools/misc/mutation_sweep.py mmssl/models/prompt/nfl.py \\
        --tests tests/test_models/test_coop.py --root ../mmssl-sweep \\
        --out nfl.tsv

Two copies with ``--shard 1/2`` and ``--shard 2/2`` use two cores.
``FILE:A-B`` sweeps lines A to B of FILE only (a function just changed).
After new tests are written, ``--rerun nfl.tsv`` runs only the mutants the
table did not see killed (survived or timed out), against ``--tests``; a
line that moved since the sweep is found again by its text, one that
changed is named and skipped. A mutant that
loops forever is stopped after ``--timeout`` seconds (a few times the
tests' own run time is enough) and counts as ``timeout``.
"""
import argparse
import os.path as osp
import sys

from mmengine.utils import ProgressBar

from mmssl.engine.runner_utils import ToolError, run_tool
from mmssl.testing.mutation import (check_baseline, generate_mutants,
                                    read_table, relocate, run_sweep)

COLUMNS = ('file', 'line', 'col', 'old', 'new', 'status', 'seconds', 'failed',
           'source', 'indent')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        'files',
        nargs='*',
        help='source files, relative '
        'to --root, each optionally FILE:A-B for its lines A to B only (with '
        '--rerun: only these files / lines of the table; default all)')
    parser.add_argument(
        '--tests',
        nargs='+',
        required=True,
        help='pytest paths run for every mutant')
    parser.add_argument(
        '--root',
        default='.',
        help='the repository copy '
        'to mutate (default: the current folder)')
    parser.add_argument(
        '--shard',
        default='1/1',
        help='K/N: run every '
        'N-th mutant starting at the K-th (default 1/1)')
    parser.add_argument(
        '--timeout',
        type=float,
        default=600.,
        help='seconds per test run (default 600)')
    parser.add_argument(
        '--threads',
        type=int,
        default=1,
        help='torch threads per test run (default 1)')
    parser.add_argument(
        '--list',
        action='store_true',
        help='print the mutants and run nothing')
    parser.add_argument('--out', help='TSV file of every result')
    parser.add_argument(
        '--rerun',
        metavar='TABLE',
        help='a TSV table of an earlier sweep: '
        'run only its mutants that were not killed')
    return parser.parse_args(argv)


def _shard(text: str):
    try:
        k, n = (int(v) for v in text.split('/'))
    except ValueError:
        k = n = 0
    if not 1 <= k <= n:
        raise ToolError(f'--shard must be K/N with 1 <= K <= N, got '
                        f'{text!r}')
    return k, n


def _source_file(root: str, path: str) -> str:
    full = osp.join(root, path)
    if not osp.isfile(full):
        raise ToolError(f'{full}: no such file (FILES are relative '
                        'to --root)')
    return full


def _targets(files) -> dict:
    """``{path: [(first line, last line), ...]}`` of FILES given as
    ``PATH`` or ``PATH:A-B`` (a path may be named with several ranges)."""
    targets = {}
    for text in files:
        path, lines = text, (1, float('inf'))
        head, sep, tail = text.rpartition(':')
        if sep and '-' in tail:
            first, _, last = tail.partition('-')
            if not (first.isdigit() and last.isdigit()
                    and 1 <= int(first) <= int(last)):
                raise ToolError(f'{text}: a line range must be FILE:A-B with '
                                '1 <= A <= B, e.g. pkg/mod.py:40-75')
            path, lines = head, (int(first), int(last))
        targets.setdefault(path, []).append(lines)
    return targets


def _wanted(mutant, targets: dict) -> bool:
    """Whether ``mutant`` is in the files / line ranges (all if none)."""
    return not targets or any(first <= mutant.line <= last
                              for first, last in targets.get(mutant.path, ()))


def _table_mutants(table: str, files, root: str) -> list:
    """The not-killed mutants of ``table`` (of ``files`` when given),
    each moved to where its line is now under ``root``; rows whose line
    changed since are named on stderr and skipped."""
    if not osp.isfile(table):
        raise ToolError(f'--rerun {table}: no such file (the TSV table a '
                        'sweep wrote with --out)')
    try:
        rows = read_table(table)
    except ValueError as err:
        raise ToolError(str(err)) from None
    texts, mutants, targets = {}, [], _targets(files)
    for mutant, status, source, indent in rows:
        if status == 'killed' or (targets and mutant.path not in targets):
            continue
        if mutant.path not in texts:
            with open(_source_file(root, mutant.path)) as f:
                texts[mutant.path] = f.read()
        try:
            moved = relocate(mutant, source, texts[mutant.path], indent)
        except ValueError as err:  # the line changed: not this mutant
            print(f'--rerun {table}: skipped: {err}', file=sys.stderr)
            continue
        if _wanted(moved, targets):  # line ranges name today's lines
            mutants.append(moved)
    return mutants


def main(argv=None) -> int:
    args = parse_args(argv)
    k, n = _shard(args.shard)
    if args.rerun and args.out and osp.abspath(args.out) == osp.abspath(
            args.rerun):
        raise ToolError(f'--out {args.out} is the --rerun table itself; '
                        'write the re-run to another file')
    if args.rerun:
        mutants = _table_mutants(args.rerun, args.files, args.root)
    elif not args.files:
        raise ToolError('name the source FILES to sweep, or --rerun TABLE '
                        'to run the survivors of an earlier sweep')
    else:
        mutants, targets = [], _targets(args.files)
        for path in targets:
            with open(_source_file(args.root, path)) as f:
                mutants += [
                    m for m in generate_mutants(path, f.read())
                    if _wanted(m, targets)
                ]
    mutants = mutants[k - 1::n]
    if args.list:
        for m in mutants:
            print(f'{m.path}:{m.line}:{m.col}\t{m.old!r} -> {m.new!r}')
        return 0
    try:
        check_baseline(args.tests, args.root, args.timeout, args.threads)
    except ValueError as err:
        raise ToolError(str(err)) from None
    rows = []
    bar = ProgressBar(len(mutants), file=sys.stderr)

    lines_of = {}

    def record(result):
        m = result.mutant
        if m.path not in lines_of:  # the file is back as it was by now
            with open(osp.join(args.root, m.path)) as f:
                lines_of[m.path] = f.read().split('\n')
        line = lines_of[m.path][m.line - 1]
        rows.append((m.path, m.line, m.col, m.old, m.new, result.status,
                     f'{result.seconds:.1f}', result.failed, result.source,
                     len(line) - len(line.lstrip())))
        if args.out:
            with open(args.out, 'a') as f:
                f.write('\t'.join(str(v) for v in rows[-1]) + '\n')
        bar.update()

    if args.out and not osp.isfile(args.out):
        with open(args.out, 'w') as f:
            f.write('\t'.join(COLUMNS) + '\n')
    results = run_sweep(mutants, args.tests, args.root, args.timeout,
                        args.threads, record)
    survived = [r for r in results if r.status != 'killed']
    print(f'\n{len(results)} mutants: {len(results) - len(survived)} '
          f'killed, {len(survived)} not killed')
    for r in survived:
        m = r.mutant
        print(f'{r.status.upper():9s} {m.path}:{m.line}:{m.col} '
              f'{m.old!r} -> {m.new!r}   {r.source}')
    return 0


if __name__ == '__main__':
    run_tool(main)
