# Copyright (c) mmssl contributors. All rights reserved.
"""Training a config in this process and reading its last validation, for
tools that train many short runs one after the other (the SubTuning search):
each run's logger, message hub and visualizer are released afterwards, so a
long search does not pile up open files or named instances."""
import contextlib
import gc
import os
import os.path as osp
from typing import Any, Dict, List, Optional

from mmengine.config import Config
from mmengine.hooks import Hook

from mmssl.engine.runner_utils import build_runner, friendly_errors

__all__ = ['train_run', 'release_runner']


class _ValMetricsHook(Hook):
    """Keeps the metrics of every validation of a run."""

    priority = 'LOWEST'

    def __init__(self) -> None:
        self.metrics: List[Dict[str, Any]] = []

    def after_val_epoch(self, runner, metrics=None) -> None:
        self.metrics.append(dict(metrics or {}))


def release_runner(runner) -> None:
    """Close a finished runner's log files and forget its named instances
    (logger, message hub, visualizer, default scope)."""
    from mmengine.registry import DefaultScope
    name = runner.experiment_name
    for handler in list(runner.logger.handlers):
        runner.logger.removeHandler(handler)
        handler.close()
    with contextlib.suppress(Exception):
        runner.visualizer.close()
    for instance in (runner.logger, runner.message_hub, runner.visualizer):
        type(instance)._instance_dict.pop(name, None)
    DefaultScope._instance_dict.pop(name, None)


def train_run(cfg: Config,
              config_path: str = '<config>',
              stdout_file: Optional[str] = None) -> Dict[str, Any]:
    """Train one run config in this process; return its last validation.

    The runner is built like ``tools/train.py`` does (``runner_type``
    honoured, unknown ``type=`` names reported as a :class:`ToolError`) and
    released afterwards.

    Args:
        cfg (Config): a complete runner config with its ``work_dir`` and
            ``experiment_name``.
        config_path (str): the config file, for error messages.
        stdout_file (str, optional): send the run's console output to this
            file instead of the terminal.

    Returns:
        dict: the metrics of the run's last validation (``{}`` when it
        never validated).
    """
    hook = _ValMetricsHook()
    runner = None
    with contextlib.ExitStack() as stack:
        if stdout_file:
            os.makedirs(osp.dirname(stdout_file), exist_ok=True)
            stream = stack.enter_context(open(stdout_file, 'w'))
            stack.enter_context(contextlib.redirect_stdout(stream))
        try:
            with friendly_errors(config_path, cfg):
                runner = build_runner(cfg)
                runner.register_hook(hook)
                runner.train()
        finally:
            if runner is not None:
                release_runner(runner)
            del runner
            gc.collect()
    return hook.metrics[-1] if hook.metrics else {}
