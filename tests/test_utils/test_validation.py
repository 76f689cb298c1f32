# Copyright (c) mmssl contributors. All rights reserved.
import math

import numpy as np
import pytest

from mmssl.utils.validation import check_choice, check_float, check_int


@pytest.mark.parametrize('value', [1, 7, np.int64(3)])
def test_check_int_accepts_integers(value):
    out = check_int(value, 'num_masks', 'Owner')
    assert out == value and type(out) is int


@pytest.mark.parametrize('value', [True, False, 1.0, '2', None, 2.5])
def test_check_int_refuses_other_types(value):
    with pytest.raises(ValueError, match='num_masks must be an integer'):
        check_int(value, 'num_masks', 'Owner', minimum=0)


def test_check_int_bounds_are_inclusive():
    assert check_int(0, 'k', minimum=0) == 0
    assert check_int(4, 'k', minimum=1, maximum=4) == 4
    with pytest.raises(ValueError, match=r'>= 1, got 0'):
        check_int(0, 'k')
    with pytest.raises(ValueError, match=r'in \[1, 4\], got 5'):
        check_int(5, 'k', maximum=4)
    with pytest.raises(ValueError, match=r'<= 4, got 5'):
        check_int(5, 'k', minimum=None, maximum=4)
    assert check_int(-3, 'k', minimum=None) == -3


def test_message_names_owner_key_value_and_range():
    with pytest.raises(ValueError) as err:
        check_int(0, 'model.queue_len', 'DenseCL')
    assert str(err.value) == ('DenseCL: model.queue_len must be an integer '
                              '>= 1, got 0')
    with pytest.raises(ValueError) as err:
        check_float(
            1.5,
            'momentum',
            'LinearAnnealEMA',
            low=0,
            high=1,
            inclusive=(True, False),
            note='1 - EMA decay')
    assert str(err.value) == ('LinearAnnealEMA: momentum (1 - EMA decay) '
                              'must be a number in [0, 1), got 1.5')
    with pytest.raises(ValueError) as err:
        check_int(-1, 'interval')
    assert str(err.value) == 'interval must be an integer >= 1, got -1'


def test_check_float_bounds_inclusive_and_exclusive():
    assert check_float(0, 'r', low=0, high=1) == 0.0
    assert check_float(1, 'r', low=0, high=1) == 1.0
    assert type(check_float(1, 'r')) is float
    assert check_float(0, 'r', low=0, high=1, inclusive=(True, False)) == 0
    with pytest.raises(ValueError, match=r'in \[0, 1\), got 1'):
        check_float(1, 'r', low=0, high=1, inclusive=(True, False))
    with pytest.raises(ValueError, match=r'in \(0, 1\], got 0'):
        check_float(0, 'r', low=0, high=1, inclusive=(False, True))
    with pytest.raises(ValueError, match=r'in \(0, 1\), got 1'):
        check_float(1, 'r', low=0, high=1, inclusive=False)
    with pytest.raises(ValueError, match=r'> 0, got 0'):
        check_float(0, 'temperature', low=0, inclusive=False)
    with pytest.raises(ValueError, match=r'>= 0, got -0.1'):
        check_float(-0.1, 'beta', low=0)
    with pytest.raises(ValueError, match=r'< 1, got 1'):
        check_float(1, 'r', high=1, inclusive=False)
    assert check_float(-5.5, 'adjust') == -5.5


@pytest.mark.parametrize('value', [True, 'x', None, math.nan, math.inf])
def test_check_float_refuses_non_numbers(value):
    with pytest.raises(ValueError, match='adjust must be a'):
        check_float(value, 'adjust', 'Owner')


def test_check_choice():
    assert check_choice('mean', 'pool', 'Hook', ('auto', 'mean')) == 'mean'
    with pytest.raises(ValueError) as err:
        check_choice('max', 'pool', 'Hook', ['auto', 'mean'])
    assert str(err.value) == ("Hook: pool must be one of ('auto', 'mean'), "
                              "got 'max'")


def test_name_list_shows_8():
    from mmssl.utils.validation import name_list
    keys = [f'k{i}' for i in range(10)]
    assert name_list(keys) == ', '.join(repr(k)
                                        for k in keys[:8]) + ' (and 2 more)'
    assert name_list(keys[:8]) == ', '.join(repr(k) for k in keys[:8])
    assert name_list(keys, limit=1) == "'k0' (and 9 more)"
    assert name_list(iter(keys), limit=2, quote=False) == 'k0, k1 (and 8 more)'
    assert name_list([]) == ''
