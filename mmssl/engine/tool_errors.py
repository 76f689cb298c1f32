# Copyright (c) mmssl contributors. All rights reserved.
"""The user-facing errors of the tools and the helpers that phrase them.

All of them derive from :class:`ToolError`, which the tools print as
``error: <message>`` (exit code 2) instead of a traceback.
"""
import contextlib
import difflib
import logging
import warnings
from typing import TYPE_CHECKING, Iterator, List, Sequence

if TYPE_CHECKING:
    from .checkpoint_report import StateDictReport

__all__ = [
    'ToolError', 'ConfigFileError', 'CfgOptionsError', 'UnknownTypeError',
    'CheckpointMismatchError'
]

EXTRACT_BACKBONE = 'tools/model_converters/extract_backbone.py'

class ToolError(Exception):
    """A mistake in the user's input (config, arguments, checkpoint).

    The tools print it as ``error: <message>`` and exit with code 2.
    """


class ConfigFileError(ToolError):
    """The config file is missing or cannot be read."""


class CfgOptionsError(ToolError):
    """A ``--cfg-options`` item is malformed or names a non-existent key."""


class UnknownTypeError(ToolError):
    """A ``type=`` in the config is not registered in the searched registry.

    Attributes:
        type_name (str): the unknown type as written (``'MAEVit'``).
        registry (str): the registry name (``'model'``).
        scope (str): the scope searched (``'mmpretrain'``).
        suggestions (list[str]): closest registered names, best first.
    """

    def __init__(self, message: str, type_name: str, registry: str, scope: str,
                 suggestions: List[str]):
        super().__init__(message)
        self.type_name = type_name
        self.registry = registry
        self.scope = scope
        self.suggestions = suggestions


class CheckpointMismatchError(ToolError):
    """The checkpoint's weights do not fit the model built from the config.

    Attributes:
        report (StateDictReport): the key-by-key comparison.
    """

    def __init__(self, message: str, report: 'StateDictReport'):
        super().__init__(message)
        self.report = report


def _quote_list(names: Sequence[str], limit: int = 5) -> str:
    shown = ', '.join(repr(n) for n in list(names)[:limit])
    if len(names) > limit:
        shown += f', ... ({len(names) - limit} more)'
    return shown


def _close(word: str,
           candidates: Sequence[str],
           n: int = 3,
           cutoff: float = 0.6) -> List[str]:
    """Closest candidates to ``word``, compared case-insensitively."""
    lower = {}
    for cand in candidates:
        lower.setdefault(str(cand).lower(), str(cand))
    hits = difflib.get_close_matches(
        str(word).lower(), list(lower), n=n, cutoff=cutoff)
    return [lower[h] for h in hits]


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            yield
    finally:
        logging.disable(previous)
