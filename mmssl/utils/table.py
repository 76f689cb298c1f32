# Copyright (c) mmssl contributors. All rights reserved.
"""Plain-text tables for the tools' summaries."""
from typing import Iterable, Sequence, Tuple


def format_table(rows: Iterable[Tuple[str, dict]],
                 columns: Sequence[Tuple[str, str, str]],
                 first: str = 'name') -> str:
    """Align named rows of numbers into a table.

    Args:
        rows: ``(row name, {key: value})`` pairs.
        columns: ``(key, title, format spec)`` per column; a missing or None
            value prints as ``-``.
        first (str): title of the name column.

    Returns:
        str: the header, a rule and one line per row.
    """
    lines = [[first] + [title for _, title, _ in columns]]
    for name, values in rows:
        line = [str(name)]
        for key, _, fmt in columns:
            value = values.get(key)
            line.append('-' if value is None else format(value, fmt))
        lines.append(line)
    widths = [
        max(len(line[i]) for line in lines) for i in range(len(lines[0]))
    ]
    text = [
        '  '.join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(line, widths)))
        for line in lines
    ]
    text.insert(1, '-' * len(text[0]))
    return '\n'.join(text)
