# Copyright (c) mmssl contributors. All rights reserved.
"""Training a config in this process: the last validation is returned,
the run's named instances are released, console output goes to a file,
and a config that cannot be built is named in the error."""
import pytest
from mmengine.config import Config
from mmengine.logging import MessageHub, MMLogger
from mmengine.visualization import Visualizer

import mmssl.analysis.train_in_process as tip
from mmssl.analysis.train_in_process import train_run
from mmssl.engine.runner_utils import UnknownTypeError


class FakeRunner:
    """Validates ``len(vals)`` times with these metrics (None: a
    validation without metrics) and prints a line."""

    def __init__(self, cfg, vals):
        name = cfg.experiment_name
        self.experiment_name = name
        self.logger = MMLogger.get_instance(name, logger_name=name)
        self.message_hub = MessageHub.get_instance(name)
        self.visualizer = Visualizer.get_instance(name)
        self.vals, self.hooks = vals, []

    def register_hook(self, hook):
        self.hooks.append(hook)

    def train(self):
        print('training')
        for metrics in self.vals:
            for hook in self.hooks:
                hook.after_val_epoch(self, metrics)


def _cfg(name, tmp_path):
    return Config(
        dict(
            model=dict(type='mmssl.NoSuchModel'),
            default_scope='mmssl',
            work_dir=str(tmp_path / 'work'),
            experiment_name=name))


def _named(name):
    return [
        name in kind._instance_dict
        for kind in (MMLogger, MessageHub, Visualizer)
    ]


def test_the_last_validation_and_the_release(tmp_path, monkeypatch):
    runners = []

    def build(vals):
        return lambda cfg: runners.append(FakeRunner(cfg, vals)) or runners[-1]

    vals = [dict(top1=1.), None, dict(top1=3., top5=4.)]
    monkeypatch.setattr(tip, 'build_runner', build(vals))
    log = tmp_path / 'logs' / 'run.log'
    assert train_run(
        _cfg('tip-a', tmp_path), stdout_file=str(log)) == dict(
            top1=3., top5=4.)
    assert log.read_text() == 'training\n'
    assert _named('tip-a') == [False] * 3
    assert runners[-1].logger.handlers == []
    # the hook keeps every validation, None as {}
    hook = runners[-1].hooks[0]
    assert hook.metrics == [dict(top1=1.), {}, dict(top1=3., top5=4.)]
    # another run's output into the same folder; no validation: {}
    monkeypatch.setattr(tip, 'build_runner', build([]))
    other = tmp_path / 'logs' / 'other.log'
    assert train_run(_cfg('tip-b', tmp_path), stdout_file=str(other)) == {}
    assert other.read_text() == 'training\n'
    assert _named('tip-b') == [False] * 3


def test_a_config_that_cannot_be_built(tmp_path):
    log = tmp_path / 'logs' / 'run.log'
    log.parent.mkdir()
    with pytest.raises(
            UnknownTypeError, match=r"NoSuchModel.*'my_config\.py'"):
        train_run(_cfg('tip-c', tmp_path), 'my_config.py', str(log))
    assert log.exists()
    assert _named('tip-c') == [False] * 3
