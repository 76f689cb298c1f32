# Copyright (c) mmssl contributors. All rights reserved.
"""``import mmssl`` is enough for a plain ``Config.fromfile`` to read
``_base_ = 'mmssl::...'`` bases (mmssl.utils.config)."""
import os.path as osp
import subprocess
import sys

import pytest

from mmssl.utils.config import (MMSSL_PREFIX, close_matches, default_scope_of,
                                missing_config_message, mmssl_configs_root,
                                resolve_mmssl_config)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
MAE = 'mae/mae_vit-tiny-p8_1xb64-coslr-30e_embedded.py'


def test_plain_fromfile_after_import_mmssl(tmp_path):
    cfg = tmp_path / 'mine.py'
    cfg.write_text(f"_base_ = '{MMSSL_PREFIX}{MAE}'\n"
                   'train_dataloader = dict(batch_size=3)\n')
    code = ('import mmssl\n'
            'from mmengine.config import Config\n'
            f'cfg = Config.fromfile({str(cfg)!r})\n'
            'print(cfg.model.type, cfg.train_dataloader.batch_size, '
            'cfg.default_scope)\n')
    res = subprocess.run([sys.executable, '-c', code],
                         cwd=str(tmp_path),
                         capture_output=True,
                         text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    # the base keeps the config's own scope (no _scope_ stamped on it)
    assert res.stdout.split() == ['mmssl.MAE', '3', 'mmpretrain']


def test_resolve_and_missing_names():
    assert osp.realpath(mmssl_configs_root()) == osp.realpath(
        osp.join(ROOT, 'configs'))
    assert osp.realpath(resolve_mmssl_config(MMSSL_PREFIX + MAE)) == \
        osp.realpath(osp.join(ROOT, 'configs', MAE))
    with pytest.raises(FileNotFoundError, match='did you mean'):
        resolve_mmssl_config(MMSSL_PREFIX + MAE.replace('tiny', 'tiyn'))
    assert 'does not exist' in missing_config_message(
        osp.join(ROOT, 'nope', 'x.py'))
    assert close_matches('backbon', ['neck', 'Backbone']) == ['Backbone']


def test_default_scope_rule():
    from mmengine.config import Config
    assert default_scope_of(Config(dict(default_scope='mmdet'))) == 'mmdet'
    assert default_scope_of(Config(dict())) == 'mmengine'


def test_read_config_messages_and_the_tools_error(tmp_path):
    from mmssl.engine.config_options import load_config
    from mmssl.engine.tool_errors import ConfigFileError
    from mmssl.utils.config import read_config
    cfg = read_config(MMSSL_PREFIX + MAE)
    assert cfg.model.backbone.patch_size == 8
    with pytest.raises(FileNotFoundError, match='does not exist'):
        read_config(str(tmp_path / 'nope.py'))
    broken = tmp_path / 'broken.py'
    broken.write_text("_base_ = ['missing_base.py']\n")
    with pytest.raises(
            FileNotFoundError,
            match=r'could not be loaded: .*check the paths in its _base_'):
        read_config(str(broken))
    # the tools' loader: the same message as a user error
    with pytest.raises(ConfigFileError, match='check the paths in its _base_'):
        load_config(str(broken))
    with pytest.raises(ConfigFileError, match='does not exist'):
        load_config(str(tmp_path / 'nope.py'))


def test_missing_config_suggests_configs_not_package_code(tmp_path):
    (tmp_path / 'configs').mkdir()
    (tmp_path / 'configs' / 'data_cfg.py').write_text('x = 1\n')
    (tmp_path / 'pkg').mkdir()
    (tmp_path / 'pkg' / '__init__.py').write_text('')
    (tmp_path / 'pkg' / 'data.py').write_text('')
    msg = missing_config_message(str(tmp_path / 'data.py'))
    assert 'data_cfg.py' in msg
    assert osp.join('pkg', 'data.py') not in msg
