# Copyright (c) mmssl contributors. All rights reserved.
"""mmssl.engine.backbone_eval_cli: the arguments and rows of the backbone
evaluation tools and the checks before their checkpoint is loaded."""
import argparse
import logging

import pytest
from mmengine.config import Config
from mmengine.logging import MMLogger

from mmssl.engine import backbone_eval_cli as cli
from mmssl.engine.tool_errors import ToolError


def _args(argv):
    parser = argparse.ArgumentParser()
    cli.add_backbone_args(parser, 'probe')
    return parser.parse_args(argv)


def test_rows_pretrained_then_random():
    assert cli.backbone_rows(_args(['c.py',
                                    'w.pth'])) == [('pretrained', 'w.pth')]
    assert cli.backbone_rows(_args(['c.py', '--random'])) == [('random', None)]
    assert cli.backbone_rows(_args(['c.py', 'w.pth',
                                    '--random'])) == [('pretrained', 'w.pth'),
                                                      ('random', None)]
    assert cli.backbone_rows(_args(['c.py'])) == []


@pytest.fixture
def loads(monkeypatch):
    calls = []

    def load(cfg, checkpoint, device='cpu'):
        calls.append(
            (checkpoint, device, MMLogger.get_current_instance().level))
        if str(checkpoint).endswith('bad.pth'):
            raise ValueError('the checkpoint holds no backbone weights')
        return 'model'

    monkeypatch.setattr(cli, 'load_backbone_from_checkpoint', load)
    return calls


def test_local_checkpoints_must_exist_urls_are_left_to_the_loader(
        loads, tmp_path):
    with pytest.raises(ToolError, match="checkpoint 'missing.pth' does not"):
        cli.load_eval_model(Config(), 'missing.pth')
    assert loads == []
    logger = MMLogger.get_current_instance()
    level = logger.level
    assert cli.load_eval_model(Config(), 'https://host/w.pth') == 'model'
    assert cli.load_eval_model(Config(), None, device='meta') == 'model'
    # quiet while loading, the level restored after
    assert loads == [('https://host/w.pth', 'cpu', logging.WARNING),
                     (None, 'meta', logging.WARNING)]
    assert logger.level == level
    (tmp_path / 'bad.pth').write_bytes(b'')
    with pytest.raises(ToolError, match='holds no backbone weights'):
        cli.load_eval_model(Config(), str(tmp_path / 'bad.pth'))
    assert logger.level == level
