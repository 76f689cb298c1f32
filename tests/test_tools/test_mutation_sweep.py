# Copyright (c) mmssl contributors. All rights reserved.
"""Single-line mutation sweeps: the mutants made, applied, run, put back."""
import os.path as osp

import pytest

from mmssl.engine.runner_utils import ToolError
from mmssl.testing.mutation import (Mutant, apply_mutant, generate_mutants,
                                    read_table, relocate, run_mutant,
                                    run_sweep)

SOURCE = '''\
LIMIT = 2**8
import math


@staticmethod
def scaled(x, *args, **kwargs):
    """Docs: a + b."""
    if x < 0 and not args:
        raise ValueError(
            f'x must be >= 0, got {x - 1}' +
            str(x * 2))
    # 2 * x in a comment
    warnings.warn('slow', stacklevel=2)
    y = -x
    z = (x -
         y)
    return max(x * 2.5, 1) + z @ x == True


def other(x,  # a comment before the star
          *rest):
    return 2.0 + 1e3
'''


def _described(mutants):
    return [(m.line, m.old, m.new) for m in mutants]


def test_mutants_of_each_kind_and_the_skipped_lines():
    got = _described(generate_mutants('m.py', SOURCE))
    assert got == [
        (1, '2', '4'),
        (1, '**', '*'),
        (1, '8', '16'),
        (8, '<', '<='),
        (8, '0', '1'),
        (8, 'and', 'or'),
        (8, 'not', ''),
        (14, '-', ''),
        (15, '-', '+'),
        (17, 'max', 'min'),
        (17, '*', '/'),
        (17, '2.5', '5.0'),
        (17, '1', '0'),
        (17, '+', '-'),
        (17, '@', '*'),
        (17, '==', '!='),
        (17, 'True', 'False'),
        (22, '2.0', '4.0'),
        (22, '+', '-'),
        (22, '1e3', '2000.0'),
    ]
    # strings, comments, the three lines of the raise statement, the
    # warning, the import, the decorator and the star arguments are left
    # alone (also *rest on a continuation line after a comment); a
    # statement after the raise is mutated again (line 15); a float stays a
    # float


def test_apply_changes_one_token_and_refuses_a_stale_mutant():
    mutants = generate_mutants('m.py', SOURCE)
    first = apply_mutant(SOURCE, mutants[0])
    assert first.split('\n')[0] == 'LIMIT = 4**8'
    assert sum(a != b
               for a, b in zip(first.split('\n'), SOURCE.split('\n'))) == 1
    mul = next(m for m in mutants if m.old == '*')
    assert 'x / 2.5' in apply_mutant(SOURCE, mul)
    with pytest.raises(ValueError, match=r"m.py:1: expected '2' at column"):
        apply_mutant(SOURCE.replace('2**8', '3**8'), mutants[0])
    for line in (0, 99):
        with pytest.raises(ValueError, match=f'line {line} does not exist'):
            apply_mutant(SOURCE, Mutant('m.py', line, 0, 'x', 'y'))
    # the last line of a file without a final newline
    assert apply_mutant('a = 1', Mutant('m.py', 1, 4, '1', '0')) == 'a = 0'


def _package(tmp_path):
    (tmp_path / 'pkg').mkdir()
    (tmp_path / 'pkg' / '__init__.py').write_text('')
    (tmp_path / 'pkg' /
     'half.py').write_text('def half(x):\n    return x / 2 if x > 0 else 0\n')
    (tmp_path / 'test_half.py').write_text(
        'import os\n\nfrom pkg.half import half\n\n\ndef test_half():\n'
        '    assert half(4) == 2\n'
        "    assert os.environ['OMP_NUM_THREADS'] == '1'  # the default\n")
    return str(tmp_path)


def test_run_kills_survives_and_puts_the_file_back(tmp_path):
    root = _package(tmp_path)
    path = osp.join('pkg', 'half.py')
    original = open(osp.join(root, path)).read()
    by_old = {m.old: m for m in generate_mutants(path, original)}
    killed = run_mutant(by_old['/'], ['test_half.py'], root, timeout=120)
    assert killed.status == 'killed'
    assert killed.failed == 'FAILED test_half.py::test_half'
    assert killed.source == 'return x / 2 if x > 0 else 0'
    # half(4) does not reach the else branch: '0' -> '1' there survives
    zero = [m for m in generate_mutants(path, original) if m.old == '0']
    assert len(zero) == 2  # 'x > 0' and 'else 0'
    survived = run_mutant(zero[1], ['test_half.py'], root, timeout=120)
    assert survived.status == 'survived' and survived.failed == ''
    assert open(osp.join(root, path)).read() == original
    assert 0 < killed.seconds < 120 and 0 < survived.seconds < 120
    # run_sweep: the same, in order, each result also handed over as it comes
    seen = []
    results = run_sweep([by_old['/'], zero[1]], ['test_half.py'],
                        root,
                        on_result=seen.append)
    assert [r.status for r in results] == ['killed', 'survived']
    assert seen == results


def test_tool_lists_shards_and_writes_the_table(tmp_path, load_tool_module,
                                                capsys):
    tool = load_tool_module('misc/mutation_sweep.py')
    root = _package(tmp_path)
    path = osp.join('pkg', 'half.py')
    assert tool.main(
        [path, '--tests', 'test_half.py', '--root', root, '--list']) == 0
    listed = capsys.readouterr().out.splitlines()
    assert len(listed) == 5 and listed[0].startswith('pkg/half.py:2:')
    tool.main([
        path, '--tests', 'test_half.py', '--root', root, '--shard', '2/2',
        '--list'
    ])
    assert capsys.readouterr().out.splitlines() == listed[1::2]
    out = tmp_path / 'sweep.tsv'
    tool.main([
        path, '--tests', 'test_half.py', '--root', root, '--shard', '2/2',
        '--out',
        str(out), '--timeout', '120'
    ])
    rows = [r.split('\t') for r in out.read_text().splitlines()]
    assert rows[0][:6] == ['file', 'line', 'col', 'old', 'new', 'status']
    # the 2nd and 4th mutants: '2' -> '4' (killed), 'x > 0' -> 'x > 1'
    assert [(r[3], r[5]) for r in rows[1:]] == [('2', 'killed'),
                                                ('0', 'survived')]
    printed = capsys.readouterr().out
    assert '2 mutants: 1 killed, 1 not killed' in printed
    # FILE:A-B: only those lines (the source is on line 2)
    assert tool.main(
        [path + ':2-2', '--tests', 'test_half.py', '--root', root,
         '--list']) == 0
    assert capsys.readouterr().out.splitlines() == listed
    assert tool.main([
        path + ':1-1', path + ':3-9', '--tests', 'x', '--root', root, '--list'
    ]) == 0
    assert capsys.readouterr().out == ''
    # a dash in a file name is not a range
    (tmp_path / 'pkg' / 'half-copy.py').write_text('x = 1\n')
    assert tool.main(
        ['pkg/half-copy.py', '--tests', 'x', '--root', root, '--list']) == 0
    assert capsys.readouterr().out.startswith('pkg/half-copy.py:1:4')
    for bad in (':3-2', ':0-2', ':a-b'):
        with pytest.raises(ToolError, match='a line range must be FILE:A-B'):
            tool.main([path + bad, '--tests', 'x', '--root', root, '--list'])
    for bad in ('3/2', '0/2', 'abc'):
        with pytest.raises(ToolError, match='--shard must be K/N'):
            tool.main([path, '--tests', 'x', '--root', root, '--shard', bad])
    with pytest.raises(SystemExit):  # --tests is required
        tool.main([path, '--root', root])
    # without --out: the results are printed only
    assert tool.main(
        [path, '--tests', 'test_half.py', '--root', root, '--shard',
         '1/5']) == 0
    assert '1 mutants: 1 killed, 0 not killed' in capsys.readouterr().out
    # tests that fail on the unchanged code would count every mutant as
    # killed: refused, naming them
    with pytest.raises(
            ToolError,
            match=r"the tests \['test_nope.py'\] do "
            'not pass on the unchanged code'):
        tool.main([path, '--tests', 'test_nope.py', '--root', root])
    with pytest.raises(ToolError, match='no such file'):
        tool.main(['nope.py', '--tests', 'x', '--root', root])


TABLE_HEADER = ('file\tline\tcol\told\tnew\tstatus\tseconds\tfailed\tsource'
                '\tindent\n')


def test_read_table_rows_and_bad_tables(tmp_path):
    table = tmp_path / 't.tsv'
    table.write_text(TABLE_HEADER +
                     'a.py\t3\t10\t+\t-\tsurvived\t1.0\t\ty = x + 1\t4\n\n'
                     'a.py\t4\t4\t0\t1\tkilled\t1.0\tFAILED t\tz = 0\t0\n')
    assert read_table(str(table)) == [
        (Mutant('a.py', 3, 10, '+', '-'), 'survived', 'y = x + 1', 4),
        (Mutant('a.py', 4, 4, '0', '1'), 'killed', 'z = 0', 0),
    ]
    # a row cut short before its indent: None
    table.write_text(TABLE_HEADER +
                     'a.py\t3\t10\t+\t-\tsurvived\t1.0\t\ty = x + 1\n')
    assert read_table(str(table))[0][2:] == ('y = x + 1', None)
    # ... or before its source: ''
    table.write_text(TABLE_HEADER + 'a.py\t3\t10\t+\t-\tsurvived\t1.0\t\n')
    assert read_table(str(table))[0][2:] == ('', None)
    # an older table without the indent (and source) columns
    table.write_text('file\tline\tcol\told\tnew\tstatus\n'
                     'a.py\t3\t10\t+\t-\tsurvived\n')
    assert read_table(str(table)) == [(Mutant('a.py', 3, 10, '+',
                                              '-'), 'survived', '', None)]
    table.write_text('a\tb\n')
    with pytest.raises(ValueError, match='t.tsv: not a mutation sweep table'):
        read_table(str(table))
    table.write_text(TABLE_HEADER + 'a.py\tthree\t8\t+\t-\tsurvived\n')
    with pytest.raises(ValueError, match=r't.tsv:2: expected the tab'):
        read_table(str(table))
    table.write_text(TABLE_HEADER + 'a.py\t3\t8\t+\n')
    with pytest.raises(ValueError, match=r't.tsv:2: expected the tab'):
        read_table(str(table))


def test_relocate_follows_a_moved_line():
    text = 'def f(x):\n    y = x + 1\n    return y + y\n'
    plus = Mutant('a.py', 2, 10, '+', '-')
    assert relocate(plus, 'y = x + 1', text) is plus
    # two lines added above: the same line, same indent, two lines down
    moved = relocate(plus, 'y = x + 1', '# a\n# b\n' + text)
    assert moved == Mutant('a.py', 4, 10, '+', '-')
    assert apply_mutant('# a\n# b\n' + text, moved).split('\n')[3] == \
        '    y = x - 1'
    # the line moved into a deeper block: the column follows the indent
    deeper = 'def f(x):\n    if x:\n        y = x + 1\n'
    assert relocate(plus, 'y = x + 1',
                    deeper) == Mutant('a.py', 3, 14, '+', '-')
    # of two equal lines, the nearer one
    twice = '\n' * 5 + text + '\n' * 5 + 'y = x + 1\n'
    assert relocate(plus, 'y = x + 1',
                    twice) == Mutant('a.py', 7, 10, '+', '-')
    # of two equal lines, the nearer one also when it comes second
    far = 'y = x + 1\n' + '\n' * 7 + '    y = x + 1\n'
    assert relocate(Mutant('a.py', 8, 10, '+', '-'), 'y = x + 1',
                    far).line == 9
    # an older table (no indent): a top-level line moved into a function
    top = Mutant('a.py', 1, 6, '+', '-')
    assert relocate(top, 'y = x + 1', 'def f(x):\n    y = x + 1\n') == \
        Mutant('a.py', 2, 10, '+', '-')
    # the second '+' of a line whose indent changed: told by the indent
    # the table keeps; without it, which '+' is ambiguous
    text = 'def f(x):\n    y = x + 1\n    return y + y + y\n'
    second = Mutant('a.py', 3, 17, '+', '-')
    deeper = 'if 1:\n' + text.replace('    ', '        ')
    moved = relocate(second, 'return y + y + y', deeper, indent=4)
    assert apply_mutant(deeper, moved).split('\n')[3] == \
        '        return y + y - y'
    with pytest.raises(ValueError, match='occurs more than once'):
        relocate(second, 'return y + y + y', deeper)
    with pytest.raises(ValueError, match='no longer in the file'):
        relocate(plus, 'y = x + 1', text.replace('+ 1', '+ 2'))


def test_tool_reruns_the_survivors_of_a_table(tmp_path, load_tool_module,
                                              capsys):
    tool = load_tool_module('misc/mutation_sweep.py')
    root = _package(tmp_path)
    path = osp.join('pkg', 'half.py')
    first = tmp_path / 'first.tsv'
    tool.main([
        path, '--tests', 'test_half.py', '--root', root, '--out',
        str(first), '--timeout', '120'
    ])
    statuses = [r.split('\t')[5] for r in first.read_text().splitlines()[1:]]
    assert statuses == ['killed'] * 2 + ['survived'] * 3
    capsys.readouterr()
    # a new test kills one survivor; a line added above moves the code
    (tmp_path / 'test_more.py').write_text(
        'from pkg.half import half\n\n\ndef test_one():\n'
        '    assert half(1) == 0.5\n')
    half = tmp_path / 'pkg' / 'half.py'
    half.write_text('"""Halves."""\n' + half.read_text())
    again = tmp_path / 'again.tsv'
    assert tool.main([
        '--rerun',
        str(first), '--tests', 'test_half.py', 'test_more.py', '--root', root,
        '--out',
        str(again), '--timeout', '120'
    ]) == 0
    rows = [r.split('\t') for r in again.read_text().splitlines()[1:]]
    # 'x > 0' -> 'x > 1' dies (half(1) == 0), 'x >= 0' and 'else 1' do not
    assert [(r[1], r[3], r[4], r[5])
            for r in rows] == [('3', '>', '>=', 'survived'),
                               ('3', '0', '1', 'killed'),
                               ('3', '0', '1', 'survived')]
    assert '3 mutants: 1 killed, 2 not killed' in capsys.readouterr().out
    # only the files named, and the lines of today's file named
    assert tool.main([
        'pkg/other.py', '--rerun',
        str(first), '--tests', 'test_half.py', '--root', root, '--list'
    ]) == 0
    assert capsys.readouterr().out == ''
    assert tool.main([
        path + ':3-3', '--rerun',
        str(first), '--tests', 'test_half.py', '--root', root, '--list'
    ]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3
    assert tool.main([
        path + ':2-2', '--rerun',
        str(first), '--tests', 'test_half.py', '--root', root, '--list'
    ]) == 0
    assert capsys.readouterr().out == ''
    with pytest.raises(ToolError, match='is the --rerun table itself'):
        tool.main(['--rerun', str(first), '--tests', 'x', '--out', str(first)])
    with pytest.raises(ToolError, match='--rerun nope.tsv: no such file'):
        tool.main(['--rerun', 'nope.tsv', '--tests', 'x'])
    with pytest.raises(ToolError, match='name the source FILES'):
        tool.main(['--tests', 'x'])
    # a changed line: its rows are named and skipped, the others run
    half.write_text('def half(x):\n    return x * 0.5\n')
    assert tool.main(
        ['--rerun',
         str(first), '--tests', 'x', '--root', root, '--list']) == 0
    printed = capsys.readouterr()
    assert printed.out == ''
    assert printed.err.count('skipped: pkg/half.py:2: the line') == 3
    assert 'no longer in the file' in printed.err
