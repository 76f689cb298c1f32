# Copyright (c) mmssl contributors. All rights reserved.
"""Single-line mutation sweeps: how strong are a method's tests?

Each mutant changes one token of one line of a source file (an operator,
a comparison, a boolean, a number, a reduction, ``detach``); the method's
tests are then run with ``pytest -x``. A mutant the tests let through
(*survived*) is a line no test checks, unless the change is equivalent
(e.g. ``dim=-1`` -> ``dim=1`` on a 2-D tensor), which a reader decides.
``tools/misc/mutation_sweep.py`` is the command line.

Lines of ``raise`` statements (error messages), logging, warnings, imports
and decorators are not mutated; strings and comments never are.
"""
import io
import os
import os.path as osp
import subprocess
import sys
import time
import tokenize
from typing import Callable, Iterable, List, NamedTuple, Optional, Sequence

__all__ = [
    'Mutant', 'MutantResult', 'generate_mutants', 'apply_mutant', 'run_mutant',
    'run_sweep', 'check_baseline', 'read_table', 'relocate'
]

#: operator -> its replacement
OPERATORS = {
    '+': '-',
    '-': '+',
    '*': '/',
    '/': '*',
    '//': '*',
    '**': '*',
    '@': '*',
    '<': '<=',
    '<=': '<',
    '>': '>=',
    '>=': '>',
    '==': '!=',
    '!=': '==',
    '+=': '-=',
    '-=': '+='
}
#: name -> its replacement
NAMES = {
    'and': 'or',
    'or': 'and',
    'True': 'False',
    'False': 'True',
    'is': 'is not',
    'in': 'not in',
    'min': 'max',
    'max': 'min',
    'amin': 'amax',
    'amax': 'amin',
    'argmin': 'argmax',
    'argmax': 'argmin',
    'mean': 'sum',
    'sum': 'mean',
    'detach': 'clone',
    'softmax': 'log_softmax',
    'log_softmax': 'softmax',
    'exp': 'log',
    'log': 'exp',
    'sqrt': 'abs'
}
#: a line holding one of these names is left alone
SKIP_LINE_NAMES = ('raise', 'print', 'warnings', 'logger', 'print_log',
                   'import', 'from')


class Mutant(NamedTuple):
    """One change: ``old`` at ``(line, col)`` of ``path`` becomes ``new``
    (lines from 1, columns from 0, as :mod:`tokenize` counts them)."""
    path: str
    line: int
    col: int
    old: str
    new: str


class MutantResult(NamedTuple):
    """``status``: ``'killed'``, ``'survived'`` or ``'timeout'``;
    ``failed``: the first failing test (empty when none); ``seconds``: the
    test run's wall time; ``source``: the original line, stripped."""
    mutant: Mutant
    status: str
    failed: str
    seconds: float
    source: str


def _skipped_lines(tokens: List[tokenize.TokenInfo]) -> set:
    """Lines of raise statements (every line of a multi-line one), of
    logging / warnings / imports, and of decorators."""
    skip, in_raise = set(), False
    for tok in tokens:
        if tok.type == tokenize.NAME and tok.string in SKIP_LINE_NAMES:
            skip.add(tok.start[0])
            in_raise = in_raise or tok.string == 'raise'
        if tok.type == tokenize.OP and tok.string == '@' and \
                tok.line.lstrip().startswith('@'):
            skip.add(tok.start[0])
        if in_raise:  # to the end of the statement
            skip.update(range(tok.start[0], tok.end[0] + 1))
        if tok.type == tokenize.NEWLINE:
            in_raise = False
    return skip


def _replacement(tok: tokenize.TokenInfo,
                 prev: Optional[tokenize.TokenInfo]) -> Optional[str]:
    after_open = prev is not None and prev.string in ('(', ',', '[', '=')
    if tok.type == tokenize.OP and tok.string in OPERATORS:
        if tok.string in ('*', '**') and (after_open or prev is None
                                          or prev.type == tokenize.NL):
            return None  # *args / **kwargs
        if tok.string == '-' and prev is not None and \
                prev.type == tokenize.OP and prev.string not in (')', ']'):
            return ''  # unary minus: dropped
        return OPERATORS[tok.string]
    if tok.type == tokenize.NAME:
        if tok.string == 'not':
            return ''
        return NAMES.get(tok.string)
    if tok.type == tokenize.NUMBER:
        try:
            value = float(tok.string.replace('_', ''))
        except ValueError:  # complex literals
            return None
        if value == 0:
            return '1'
        if value == 1:
            return '0'
        return repr(int(value * 2)) if value.is_integer() and \
            'e' not in tok.string.lower() and '.' not in tok.string \
            else repr(value * 2)
    return None


def generate_mutants(path: str, source: Optional[str] = None) -> List[Mutant]:
    """Every single-token mutant of a Python file, in file order.

    Args:
        path (str): the file (read unless ``source`` is given); kept in the
            mutants as given.
        source (str, optional): its text.

    Returns:
        list[Mutant]: one per mutable token outside skipped lines.
    """
    if source is None:
        with open(path) as f:
            source = f.read()
    tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    skip = _skipped_lines(tokens)
    mutants, prev = [], None
    for tok in tokens:
        if tok.type in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE,
                        tokenize.INDENT, tokenize.DEDENT):
            if tok.type != tokenize.COMMENT:
                prev = tok
            continue
        new = None if tok.start[0] in skip else _replacement(tok, prev)
        if new is not None:
            mutants.append(
                Mutant(path, tok.start[0], tok.start[1], tok.string, new))
        prev = tok
    return mutants


def apply_mutant(source: str, mutant: Mutant) -> str:
    """``source`` with ``mutant`` applied; refuses a mutant whose token is
    not where it says (the file changed since the mutants were made)."""
    lines = source.split('\n')
    if not 1 <= mutant.line <= len(lines):
        raise ValueError(f'{mutant.path}: line {mutant.line} does not exist '
                         f'({len(lines)} lines); make the mutants again')
    line = lines[mutant.line - 1]
    end = mutant.col + len(mutant.old)
    if line[mutant.col:end] != mutant.old:
        raise ValueError(f'{mutant.path}:{mutant.line}: expected '
                         f'{mutant.old!r} at column {mutant.col} of '
                         f'{line.strip()!r}; make the mutants again')
    lines[mutant.line - 1] = line[:mutant.col] + mutant.new + line[end:]
    return '\n'.join(lines)


def run_mutant(mutant: Mutant,
               tests: Sequence[str],
               root: str,
               timeout: float = 600.,
               threads: int = 1) -> MutantResult:
    """Apply ``mutant`` to its file under ``root``, run ``pytest -x`` on
    ``tests`` there, and put the file back (also on errors).

    The file is changed in place: run sweeps on a copy of the repository
    (``git worktree add``), not on the checkout being edited.
    """
    target = osp.join(root, mutant.path)
    with open(target) as f:
        original = f.read()
    mutated = apply_mutant(original, mutant)
    start = time.time()
    try:
        with open(target, 'w') as f:
            f.write(mutated)
        status, failed, _ = _pytest(tests, root, timeout, threads)
        status = dict(passed='survived', failed='killed').get(status, status)
    finally:
        with open(target, 'w') as f:
            f.write(original)
    source = original.split('\n')[mutant.line - 1].strip()
    return MutantResult(mutant, status, failed, time.time() - start, source)


def _pytest(tests: Sequence[str], root: str, timeout: float,
            threads: int) -> tuple:
    """``pytest -x -q TESTS`` in ``root`` (first on the path): ``('passed' |
    'failed' | 'timeout', first failing test, output)``."""
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(
            [root] + [p for p in [os.environ.get('PYTHONPATH')] if p]),
        OMP_NUM_THREADS=str(threads),
        MKL_NUM_THREADS=str(threads))
    cmd = [
        sys.executable, '-m', 'pytest', '-x', '-q', '-p', 'no:cacheprovider',
        *tests
    ]
    try:
        proc = subprocess.run(
            cmd,
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout)
    except subprocess.TimeoutExpired:
        return 'timeout', '', ''
    lines = proc.stdout.splitlines()
    first = [x for x in lines if x.startswith(('FAILED ', 'ERROR '))]
    return ('passed' if proc.returncode == 0 else 'failed',
            first[0].split(' - ')[0] if first else '',
            proc.stdout + proc.stderr)


def check_baseline(tests: Sequence[str],
                   root: str,
                   timeout: float = 600.,
                   threads: int = 1) -> None:
    """Run ``tests`` on the unchanged code first: a sweep whose tests fail
    anyway (a wrong path, a broken copy) would count every mutant as
    killed. Raises ValueError with the end of pytest's output."""
    status, failed, output = _pytest(tests, root, timeout, threads)
    if status != 'passed':
        raise ValueError(
            f'the tests {list(tests)} do not pass on the unchanged code in '
            f'{root!r} ({status}{": " + failed if failed else ""}); fix the '
            'test paths (relative to --root) or the copy before sweeping:\n' +
            output[-1500:])


def run_sweep(
    mutants: Iterable[Mutant],
    tests: Sequence[str],
    root: str,
    timeout: float = 600.,
    threads: int = 1,
    on_result: Optional[Callable[[MutantResult], None]] = None
) -> List[MutantResult]:
    """:func:`run_mutant` for each mutant in turn; ``on_result`` sees each
    result as it comes (a progress bar, a TSV line)."""
    results = []
    for mutant in mutants:
        result = run_mutant(mutant, tests, root, timeout, threads)
        if on_result is not None:
            on_result(result)
        results.append(result)
    return results


def read_table(path: str) -> List[tuple]:
    """The rows of a sweep's TSV table (``tools/misc/mutation_sweep.py
    --out``) as ``(Mutant, status, source, indent)``, in file order;
    ``indent`` is None in tables without that column.

    Raises ValueError naming the file and line of a row that is not a
    table row (a header other than the sweep's, too few columns, a line or
    column that is not a number).
    """
    rows = []
    with open(path) as f:
        lines = f.read().split('\n')
    header = lines[0].split('\t')
    if header[:6] != ['file', 'line', 'col', 'old', 'new', 'status']:
        raise ValueError(f'{path}: not a mutation sweep table (the first line '
                         'must be the header the sweep writes: file, line, '
                         'col, old, new, status, ...)')
    at = {name: i for i, name in enumerate(header)}
    for number, text in enumerate(lines[1:], start=2):
        if not text.strip():
            continue
        fields = text.split('\t')
        try:
            if len(fields) < 6:
                raise ValueError
            mutant = Mutant(fields[0], int(fields[1]), int(fields[2]),
                            fields[3], fields[4])
            indent = int(fields[at['indent']]) if 'indent' in at and \
                len(fields) > at['indent'] else None
        except ValueError:
            raise ValueError(
                f'{path}:{number}: expected the tab-separated columns '
                f'{", ".join(header)}, got {text!r}') from None
        source = fields[at['source']] if 'source' in at and \
            len(fields) > at['source'] else ''
        rows.append((mutant, fields[5], source, indent))
    return rows


def relocate(mutant: Mutant,
             source_line: str,
             text: str,
             indent: Optional[int] = None) -> Mutant:
    """``mutant`` moved to where its line is now in ``text``.

    A table's mutants name lines of the code as it was swept; when lines
    were added above since, the line whose stripped text is
    ``source_line`` (the table's ``source`` column) nearest to the old
    line number is taken, the column shifted by the change of indent
    (``indent``: the line's indent when swept; without it, found from the
    token when it occurs once in the line).
    Returns the mutant unchanged when its line is still where it says.
    Raises ValueError when the line is gone (the code itself changed:
    sweep it again) or the column cannot be told.
    """
    lines = text.split('\n')
    end = mutant.col + len(mutant.old)
    if 1 <= mutant.line <= len(lines) and \
            lines[mutant.line - 1][mutant.col:end] == mutant.old and \
            (not source_line or lines[mutant.line - 1].strip() == source_line):
        return mutant
    found = [
        i + 1 for i, line in enumerate(lines)
        if source_line and line.strip() == source_line
    ]
    if not found:
        raise ValueError(
            f'{mutant.path}:{mutant.line}: the line {source_line!r} of the '
            'table is no longer in the file; sweep the file again')
    line = min(found, key=lambda i: abs(i - mutant.line))
    now = len(lines[line - 1]) - len(lines[line - 1].lstrip())
    if indent is None:
        # each occurrence of the token in the stripped line implies an old
        # indent: one occurrence tells it
        implied = {
            mutant.col - i
            for i in range(len(source_line))
            if source_line.startswith(mutant.old, i) and i <= mutant.col
        }
        if len(implied) != 1:
            raise ValueError(
                f'{mutant.path}:{mutant.line}: the line {source_line!r} moved '
                f'to line {line} and {mutant.old!r} occurs more than once in '
                'it (a table without the indent column); sweep the file '
                'again')
        indent = implied.pop()
    return mutant._replace(line=line, col=mutant.col - indent + now)
