# Copyright (c) mmssl contributors. All rights reserved.
"""mmssl.engine.registry_errors: which registries are imported and listed
for an unknown type, on a registry tree made for the test; and the
one-line messages of mmssl.engine.tool_errors."""
import json  # noqa: F401  (a scope name that is an imported module)

import pytest
from mmengine.registry import Registry

from mmssl.engine import registry_errors
from mmssl.engine.tool_errors import _one_line


@pytest.fixture
def tree(monkeypatch):
    """A root with children: the current scope, one written as the type's
    prefix, mmssl, an imported module's name and an unrelated one."""
    root = Registry('mmssl_test_thing', scope='mmengine')
    regs = {'root': root}
    for scope in ('cur', 'wanted', 'mmssl', 'json', 'other'):
        regs[scope] = Registry('mmssl_test_thing', parent=root, scope=scope)
        regs[scope].register_module(f'{scope.title()}Model', module=object)
    root.register_module('RootModel', module=object)
    imported = []
    for scope, reg in regs.items():
        monkeypatch.setattr(
            reg,
            'import_from_location',
            lambda scope=scope: imported.append(scope))
    monkeypatch.setattr(
        registry_errors, '_root_registry', lambda name: root
        if name == 'mmssl_test_thing' else None)
    return imported


def test_only_likely_scopes_are_imported(tree):
    out = registry_errors._registry_candidates('mmssl_test_thing', 'cur',
                                               'wanted')
    # the current scope and its parent while walking up, then the scope of
    # the prefix, mmssl and a scope named like an imported module
    assert tree == ['cur', 'root', 'wanted', 'mmssl', 'json']
    assert out == [('cur.CurModel', 'CurModel'), ('RootModel', 'RootModel'),
                   ('wanted.WantedModel', 'WantedModel'),
                   ('mmssl.MmsslModel', 'MmsslModel'),
                   ('json.JsonModel', 'JsonModel'),
                   ('other.OtherModel', 'OtherModel')]


def test_unprefixed_types_get_unprefixed_names_in_reach(tree):
    out = registry_errors._registry_candidates('mmssl_test_thing', 'cur', None)
    assert tree == ['cur', 'root', 'mmssl', 'json']
    assert out[:2] == [('CurModel', 'CurModel'), ('RootModel', 'RootModel')]
    # from the root's own scope, the root is the current registry
    tree.clear()
    out = registry_errors._registry_candidates('mmssl_test_thing', 'mmengine',
                                               None)
    assert tree == ['root', 'mmssl', 'json']
    assert out[0] == ('RootModel', 'RootModel')
    assert registry_errors._registry_candidates('no_such_registry', 'cur',
                                                None) == []


def test_one_line_messages():
    assert _one_line(KeyError('x is missing')) == 'x is missing'
    assert _one_line(KeyError()) == ''
    assert _one_line(ValueError('a', 'b')) == "('a', 'b')"
    assert _one_line(ValueError('two\n  lines')) == 'two lines'
    err = FileNotFoundError(2, 'No such file or directory', 'x.txt')
    assert _one_line(err) == "No such file or directory: 'x.txt'"
    assert _one_line(OSError('plain')) == 'plain'
    worker = ('Caught ValueError in DataLoader worker process 0.\n'
              'Original Traceback (most recent call last):\n'
              '  File "x.py", line 1\n'
              'ValueError: bad image x.png\n')
    assert _one_line(RuntimeError(worker)) == 'bad image x.png'


def _unknown(type_name, scope='cur'):
    return KeyError(f'{type_name} is not in the {scope}::mmssl_test_thing '
                    'registry. Please check whether the value of ...')


def test_close_names_from_three_fifths_similar_at_most_five(tree):
    root = registry_errors._root_registry('mmssl_test_thing')
    cur = root._children['cur']
    # 'abcde' against 'abcxy': 2 * 3 / 10 = 0.6, kept; 'abxyz' 0.4 is not
    cur.register_module('AbcXy', module=object)
    cur.register_module('AbXyz', module=object)
    err = registry_errors.unknown_type_error(_unknown('Abcde'), 'c.py')
    assert err.suggestions == ['AbcXy']
    for i in range(7):
        cur.register_module(f'Abcde{i}', module=object)
    err = registry_errors.unknown_type_error(_unknown('Abcde'), 'c.py')
    assert err.suggestions == [f'Abcde{i}' for i in range(5)]


def test_the_registry_message_is_found_along_the_chain(tree):
    try:
        try:
            raise _unknown('CurModle')
        except KeyError:
            raise RuntimeError('while building the model')  # __context__
    except RuntimeError as chained:
        err = registry_errors.unknown_type_error(chained, 'c.py')
    assert err.type_name == 'CurModle' and err.suggestions == ['CurModel']
    # a KeyError's message is its first argument, unquoted
    err = registry_errors.unknown_type_error(
        ValueError(_unknown('CurModle').args[0]), 'c.py')
    assert err.type_name == 'CurModle'
    assert registry_errors.unknown_type_error(RuntimeError(), 'c.py') is None
    assert registry_errors.unknown_type_error(KeyError(), 'c.py') is None
