# Copyright (c) mmssl contributors. All rights reserved.
"""Readable errors of tools/train.py and tools/test.py."""
import subprocess
import sys

import pytest
import torch
from mmengine.registry import MODELS, init_default_scope

from mmssl.engine.runner_utils import (CheckpointMismatchError,
                                       UnknownTypeError, check_checkpoint,
                                       compare_state_dict)


@pytest.fixture(scope='module')
def train_tool(load_tool_module):
    return load_tool_module('train.py')


@pytest.fixture(scope='module')
def test_tool(load_tool_module):
    return load_tool_module('test.py')


def _edit(path, old, new, name):
    text = open(path).read()
    assert old in text
    out = path.replace('tiny_', name + '_')
    with open(out, 'w') as f:
        f.write(text.replace(old, new, 1))
    return out


def test_unknown_model_type(train_tool, tiny_mae_config, tmp_path):
    bad = _edit(tiny_mae_config, "'mmpretrain.MAEViT'", "'MAEVit'", 'typo')
    with pytest.raises(UnknownTypeError) as exc:
        train_tool.main([bad, '--work-dir', str(tmp_path / 'w')])
    err = exc.value
    msg = str(err)
    assert bad in msg and "'MAEVit'" in msg
    assert 'model.backbone.type' in msg
    assert "'model' registry of scope 'mmpretrain'" in msg
    assert err.suggestions[0] == 'MAEViT'
    assert 'custom_imports' in msg and "type='mmssl.MAEVit'" in msg


def test_unknown_type_built_lazily(train_tool, tiny_mae_config, tmp_path):
    # datasets and transforms are built only when the train loop starts
    bad = _edit(tiny_mae_config, "type='LoadImageFromFile'",
                "type='LoadImageFromFil'", 'lazy')
    with pytest.raises(UnknownTypeError) as exc:
        train_tool.main([bad, '--work-dir', str(tmp_path / 'w')])
    msg = str(exc.value)
    assert "'LoadImageFromFil'" in msg and 'LoadImageFromFile' in msg
    assert 'train_dataloader.dataset.pipeline.0.type' in msg
    assert "'transform' registry" in msg


def test_cli_prints_one_error_and_exits_2(tiny_mae_config, tools_dir):
    bad = _edit(tiny_mae_config, "'mmpretrain.MAEViT'", "'mmpretrain.MAEVit'",
                'cli')
    proc = subprocess.run([
        sys.executable, f'{tools_dir}/train.py', bad, '--work-dir',
        bad + '.work'
    ],
                          capture_output=True,
                          text=True,
                          timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert 'Traceback' not in proc.stderr
    assert f"error: unknown type 'mmpretrain.MAEVit' in config '{bad}'" \
        in proc.stderr
    assert "'mmpretrain.MAEViT'" in proc.stderr


def _build(cfg):
    init_default_scope('mmpretrain')
    return MODELS.build(cfg)


def _save(tmp_path, name, state_dict):
    path = str(tmp_path / name)
    torch.save(dict(meta=dict(), state_dict=state_dict), path)
    return path


def test_test_tool_rejects_pretraining_checkpoint(test_tool, tiny_cls_config,
                                                  tiny_mae_model, tmp_path):
    mae = _build(tiny_mae_model)
    ckpt = _save(tmp_path, 'mae.pth', mae.state_dict())
    with pytest.raises(CheckpointMismatchError) as exc:
        test_tool.main([tiny_cls_config, ckpt, '--work-dir', str(tmp_path)])
    msg = str(exc.value)
    report = exc.value.report
    assert len(report.matched) == 30 and report.num_model_keys == 32
    assert f"checkpoint '{ckpt}' does not match" in msg
    assert tiny_cls_config in msg
    assert '30 of 32 model keys matched' in msg
    assert "2 missing from the checkpoint (e.g. 'head.layers.head.weight'" \
        in msg
    assert '20 unexpected in the checkpoint' in msg
    assert "'neck.mask_token'" in msg
    assert 'extract_backbone.py' in msg and 'init_cfg' in msg


def test_test_tool_runs_with_matching_checkpoint(test_tool, tiny_cls_config,
                                                 tmp_path):
    from mmengine.config import Config
    model = _build(Config.fromfile(tiny_cls_config).model)
    ckpt = _save(tmp_path, 'cls.pth', model.state_dict())
    out = str(tmp_path / 'metrics.json')
    metrics = test_tool.main([
        tiny_cls_config, ckpt, '--work-dir',
        str(tmp_path / 'w'), '--out', out, '--out-item', 'metrics'
    ])
    assert 'accuracy/top1' in metrics
    assert open(out).read().startswith('{')


def test_backbone_only_checkpoint_hint(tiny_cls_config, tiny_vit_backbone,
                                       tmp_path):
    from mmengine.config import Config
    model = _build(Config.fromfile(tiny_cls_config).model)
    vit = _build(tiny_vit_backbone)
    ckpt = _save(tmp_path, 'vit.pth', vit.state_dict())
    with pytest.raises(CheckpointMismatchError) as exc:
        check_checkpoint(model, ckpt, 'cls.py', strict=False)
    msg = str(exc.value)
    assert '0 of 32 model keys matched' in msg
    assert "model.backbone.init_cfg=dict(type='Pretrained'" in msg
    assert exc.value.report.backbone_like == 'backbone'


def test_load_from_partial_match_is_a_warning(tiny_cls_config, tiny_mae_model,
                                              tmp_path):
    from mmengine.config import Config
    model = _build(Config.fromfile(tiny_cls_config).model)
    ckpt = _save(tmp_path, 'mae.pth', _build(tiny_mae_model).state_dict())
    report = check_checkpoint(model, ckpt, 'cls.py', strict=False)
    assert len(report.matched) == 30 and not report.ok


def test_shape_mismatch_reported(tiny_vit_backbone, tmp_path):
    small = _build(tiny_vit_backbone)
    wide_cfg = dict(tiny_vit_backbone)
    wide_cfg['arch'] = dict(tiny_vit_backbone['arch'], embed_dims=48)
    wide = _build(wide_cfg)
    report = compare_state_dict(small, wide.state_dict())
    assert not report.missing and not report.unexpected
    assert ('cls_token', (1, 1, 48), (1, 1, 32)) in report.mismatched
    assert "'cls_token': checkpoint (1, 1, 48) vs model (1, 1, 32)" in \
        report.summary()


def test_pos_embed_resize_is_not_a_mismatch(tiny_vit_backbone):
    # mmpretrain's ViT resizes pos_embed in a load_state_dict pre-hook
    small = _build(tiny_vit_backbone)
    big = _build(dict(tiny_vit_backbone, img_size=64))
    report = compare_state_dict(small, big.state_dict())
    assert report.ok, report.summary()


def test_train_load_from_backbone_only_fails_early(train_tool, tiny_mae_config,
                                                   tiny_vit_backbone,
                                                   tmp_path):
    ckpt = _save(tmp_path, 'vit.pth', _build(tiny_vit_backbone).state_dict())
    with pytest.raises(CheckpointMismatchError, match='backbone-only'):
        train_tool.main([
            tiny_mae_config, '--work-dir',
            str(tmp_path / 'w'), '--cfg-options', f'load_from={ckpt}'
        ])


def test_missing_checkpoint_file(test_tool, tiny_cls_config, tmp_path):
    from mmssl.engine.runner_utils import ToolError
    with pytest.raises(ToolError, match='does not exist'):
        test_tool.main([
            tiny_cls_config,
            str(tmp_path / 'nope.pth'), '--work-dir',
            str(tmp_path)
        ])


def test_test_tool_rejects_pretraining_config(test_tool, tiny_mae_config,
                                              tmp_path):
    from mmssl.engine.runner_utils import ToolError
    with pytest.raises(ToolError) as exc:
        test_tool.main([tiny_mae_config, 'x.pth', '--work-dir', str(tmp_path)])
    msg = str(exc.value)
    assert 'test_dataloader, test_cfg, test_evaluator' in msg
    assert 'eval_frozen.py' in msg


def test_report_summary_lists_the_first_keys():
    from mmssl.engine.checkpoint_report import StateDictReport
    report = StateDictReport(
        matched=['a'],
        missing=[f'm{i}' for i in range(7)],
        unexpected=['u'],
        mismatched=[(f's{i}', (1, ), (2, )) for i in range(6)],
        num_model_keys=14)
    assert report.summary(limit=2) == (
        '1 of 14 model keys matched; 7 missing from the checkpoint (e.g. '
        "'m0', 'm1' (and 5 more)); 1 unexpected in the checkpoint (e.g. 'u'); "
        "6 with a different shape ('s0': checkpoint (1,) vs model (2,), "
        "'s1': checkpoint (1,) vs model (2,) (and 4 more))")
