# Copyright (c) mmssl contributors. All rights reserved.
"""Build-time checks of constructor arguments, with one message style.

A bad config value should fail when the part is built, with a message that
names the part (``owner``), the argument or config key (``key``), what is
allowed and what was given::

    InverseBlockMaskGenerator: num_masks must be an integer >= 1, got 0
    DenseCL: model.loss_lambda must be a number in [0, 1], got 1.5

Every check raises ``ValueError``, for a value of the wrong type too (a
``bool`` where an integer is expected, a string where a number is): from the
config's side both are a wrong value of the key. Each check returns the
value, converted (``int`` / ``float``), so that ``self.x = check_int(x, ...)``
reads in one line.
"""
import math
import numbers
from typing import Any, Iterable, Optional, Sequence, Tuple, Union

__all__ = ['check_int', 'check_float', 'check_choice', 'name_list']


def _subject(key: str, owner: Optional[str], note: Optional[str]) -> str:
    """``'Owner: key (note)'``, the start of every message."""
    text = f'{key} ({note})' if note else key
    return f'{owner}: {text}' if owner else text


def check_int(value: Any,
              key: str,
              owner: Optional[str] = None,
              minimum: Optional[int] = 1,
              maximum: Optional[int] = None,
              note: Optional[str] = None) -> int:
    """Check that ``value`` is an integer in ``[minimum, maximum]``.

    ``bool`` is refused although Python counts it as an ``int``
    (``num_masks=True`` is a config mistake, not 1); numpy integers are
    accepted.

    Args:
        value: The value to check.
        key (str): The argument or config key, as the user writes it.
        owner (str, optional): The part that takes it (a class name).
        minimum (int, optional): Smallest allowed value; None for no lower
            bound. Defaults to 1.
        maximum (int, optional): Largest allowed value; None (the default)
            for no upper bound.
        note (str, optional): What the key means, shown after it.

    Returns:
        int: ``value`` as a Python ``int``.

    Raises:
        ValueError: ``value`` is not an integer or lies outside the bounds.
    """
    ok = (
        isinstance(value, numbers.Integral) and not isinstance(value, bool)
        and (minimum is None or value >= minimum)
        and (maximum is None or value <= maximum))
    if not ok:
        if minimum is not None and maximum is not None:
            allowed = f'an integer in [{minimum}, {maximum}]'
        elif minimum is not None:
            allowed = f'an integer >= {minimum}'
        elif maximum is not None:
            allowed = f'an integer <= {maximum}'
        else:
            allowed = 'an integer'
        raise ValueError(f'{_subject(key, owner, note)} must be {allowed}, '
                         f'got {value!r}')
    return int(value)


def _inclusive_pair(
        inclusive: Union[bool, Tuple[bool, bool]]) -> Tuple[bool, bool]:
    if isinstance(inclusive, bool):
        return inclusive, inclusive
    low_in, high_in = inclusive
    return bool(low_in), bool(high_in)


def check_float(value: Any,
                key: str,
                owner: Optional[str] = None,
                low: Optional[float] = None,
                high: Optional[float] = None,
                inclusive: Union[bool, Tuple[bool, bool]] = True,
                note: Optional[str] = None) -> float:
    """Check that ``value`` is a finite real number within the bounds.

    Integers are accepted (``momentum=0``); ``bool``, NaN and infinities
    are refused.

    Args:
        value: The value to check.
        key (str): The argument or config key, as the user writes it.
        owner (str, optional): The part that takes it (a class name).
        low (float, optional): Lower bound; None for none.
        high (float, optional): Upper bound; None for none.
        inclusive (bool | tuple[bool, bool]): Whether the bounds are
            allowed values: one flag for both, or ``(low, high)``; e.g.
            ``(True, False)`` for ``[low, high)``. Defaults to True.
        note (str, optional): What the key means, shown after it.

    Returns:
        float: ``value`` as a Python ``float``.

    Raises:
        ValueError: ``value`` is not a finite number or lies outside the
            bounds.
    """
    low_in, high_in = _inclusive_pair(inclusive)
    ok = (
        isinstance(value, numbers.Real) and not isinstance(value, bool)
        and math.isfinite(value))
    if ok and low is not None:
        ok = value >= low if low_in else value > low
    if ok and high is not None:
        ok = value <= high if high_in else value < high
    if not ok:
        if low is not None and high is not None:
            allowed = (f'a number in {"[" if low_in else "("}{low}, '
                       f'{high}{"]" if high_in else ")"}')
        elif low is not None:
            allowed = f'a number {">=" if low_in else ">"} {low}'
        elif high is not None:
            allowed = f'a number {"<=" if high_in else "<"} {high}'
        else:
            allowed = 'a finite number'
        raise ValueError(f'{_subject(key, owner, note)} must be {allowed}, '
                         f'got {value!r}')
    return float(value)


def check_choice(value: Any,
                 key: str,
                 owner: Optional[str] = None,
                 choices: Iterable = (),
                 note: Optional[str] = None) -> Any:
    """Check that ``value`` is one of ``choices``.

    Args:
        value: The value to check.
        key (str): The argument or config key, as the user writes it.
        owner (str, optional): The part that takes it (a class name).
        choices (Iterable): The allowed values.
        note (str, optional): What the key means, shown after it.

    Returns:
        ``value`` unchanged.

    Raises:
        ValueError: ``value`` is not one of ``choices``.
    """
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f'{_subject(key, owner, note)} must be one of '
                         f'{choices}, got {value!r}')
    return value


def name_list(names: Sequence[Any], limit: int = 8, quote: bool = True) -> str:
    """The first ``limit`` names of an error message, quoted (``repr``,
    unless ``quote=False``), and how many more there are::

        'a', 'b' (and 3 more)
    """
    names = list(names)
    shown = ', '.join(repr(n) if quote else str(n) for n in names[:limit])
    more = f' (and {len(names) - limit} more)' if len(names) > limit else ''
    return shown + more
