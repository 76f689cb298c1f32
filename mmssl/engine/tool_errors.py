# Copyright (c) mmssl contributors. All rights reserved.
"""The user-facing errors of the tools and the helpers that phrase them.

All of them derive from :class:`ToolError`, which the tools print as
``error: <message>`` (exit code 2) instead of a traceback.

A few errors raised outside the tools are user errors as well and are
printed the same way, on one line (:func:`user_error_message`): a file or
folder that does not exist (``FileNotFoundError`` and its kin, e.g. a
missing data folder or checkpoint), a data folder without images, and
mmssl's checkpoint refusals (``UnsafeCheckpointError``,
``CheckpointFileError``). Every tool reports them through one of the two
entry helpers here: :func:`run_tool` (``sys.exit`` code 2) for tools whose
``main`` returns results, :func:`tool_main` for tools whose ``main`` returns
an exit code.
"""
import contextlib
import functools
import logging
import pickle
import re
import sys
import warnings
from typing import Any, Callable, Iterator, List, Optional

__all__ = [
    'ToolError', 'ConfigFileError', 'CfgOptionsError', 'UnknownTypeError',
    'user_error_message', 'print_user_error', 'run_tool', 'tool_main'
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


# --------------------------------------------------------------------------
# printing user errors
# --------------------------------------------------------------------------
#: ``OSError`` subclasses that name a path the user gave (a missing data
#: folder, checkpoint or config; a folder where a file was expected).
_PATH_ERRORS = (FileNotFoundError, NotADirectoryError, IsADirectoryError,
                PermissionError)
#: mmpretrain's ``CustomDataset`` on a folder without image files.
_EMPTY_FOLDER = re.compile(r'Found 0 files in subfolders of')
#: a data-loader worker's exception, re-raised by torch in the main process
_WORKER_TRACEBACK = 'Original Traceback (most recent call last):'


def _one_line(err: BaseException) -> str:
    """The message of ``err`` on one line.

    ``OSError``s read ``No such file or directory: 'x'`` (without the
    ``[Errno 2]``); an exception that torch re-raises from a data-loader
    worker keeps only the worker's own message.
    """
    if isinstance(err, OSError) and err.strerror and err.filename:
        text = f'{err.strerror}: {err.filename!r}'
    else:
        text = str(err.args[0]) if (isinstance(err, KeyError)
                                    and err.args) else str(err)
    if _WORKER_TRACEBACK in text:
        lines = [line for line in text.splitlines() if line.strip()]
        text = lines[-1] if lines else text
        text = re.sub(r'^[\w.]*(Error|Exception): ', '', text.strip())
    return ' '.join(text.split())


def user_error_message(err: BaseException) -> Optional[str]:
    """The ``error:`` text of a user error, ``None`` for anything else.

    User errors are :class:`ToolError` (its message as written, possibly a
    block of lines), mmssl's ``UnsafeCheckpointError`` /
    ``CheckpointFileError`` (and torch's weights-only refusal, a
    ``pickle.UnpicklingError``, for code that calls ``torch.load`` itself),
    ``FileNotFoundError`` / ``NotADirectoryError`` / ``IsADirectoryError``
    / ``PermissionError``, and mmpretrain's ``RuntimeError('Found 0 files in
    subfolders of: ...')``; all but the first are put on one line.
    """
    if isinstance(err, ToolError):
        return str(err)
    from mmssl.utils.checkpoint import (CheckpointFileError,
                                        UnsafeCheckpointError)
    checkpoint_errors = (UnsafeCheckpointError, CheckpointFileError,
                         pickle.UnpicklingError)
    if isinstance(err, checkpoint_errors + _PATH_ERRORS):
        return _one_line(err)
    if isinstance(err, RuntimeError) and _EMPTY_FOLDER.search(str(err)):
        return _one_line(err) + (' (the data folder holds no image files '
                                 'in class sub-folders)')
    return None


def print_user_error(err: BaseException) -> bool:
    """Print a user error as ``error: <message>`` on stderr.

    Returns:
        bool: whether ``err`` was a user error (and was printed).
    """
    message = user_error_message(err)
    if message is None:
        return False
    sys.stdout.flush()
    print(f'error: {message}', file=sys.stderr)
    sys.stderr.flush()
    return True


def run_tool(main: Callable[..., Any], *args, **kwargs) -> Any:
    """Call ``main``; print user errors as ``error: ...`` and exit with 2.

    For tools whose ``main`` returns results (``train.py``, ``test.py``,
    ``eval_frozen.py`` ...): ``if __name__ == '__main__': run_tool(main)``.
    A user error (see :func:`user_error_message`) is printed without a
    traceback and ends the process with ``SystemExit(2)``; anything else
    propagates with its traceback.
    """
    try:
        return main(*args, **kwargs)
    except Exception as err:
        if not print_user_error(err):
            raise
        raise SystemExit(2)


def tool_main(main: Callable[..., int]) -> Callable[..., int]:
    """Decorate a ``main`` that returns an exit code.

    A user error raised inside is printed as ``error: ...`` and the call
    returns 2, so ``main(argv)`` gives the exit code in tests as well as in
    ``sys.exit(main())``; anything else propagates with its traceback.
    """

    @functools.wraps(main)
    def wrapper(*args, **kwargs) -> int:
        try:
            return main(*args, **kwargs)
        except Exception as err:
            if not print_user_error(err):
                raise
            return 2

    return wrapper
