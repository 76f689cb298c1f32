# Copyright (c) mmssl contributors. All rights reserved.
"""tools/model_converters/convert_backbone.py, and the report of a
mismatched number of classes when a classifier checkpoint is loaded."""
import copy
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.registry import MODELS, init_default_scope

from mmssl.engine.runner_utils import (CheckpointMismatchError,
                                       check_checkpoint,
                                       classifier_shape_mismatches,
                                       compare_state_dict)
from mmssl.testing import tiny_data2vec2_cfg, tiny_simclr_cfg
from mmssl.utils import safe_torch_load


@pytest.fixture(scope='module')
def tool(load_tool_module):
    return load_tool_module('model_converters/convert_backbone.py')


def _build(cfg):
    init_default_scope('mmpretrain')
    return MODELS.build(copy.deepcopy(cfg))


def _save(path, state_dict, **extra):
    torch.save(
        dict(meta=dict(epoch=1, iter=5), state_dict=state_dict, **extra), path)
    return str(path)


@pytest.fixture
def mae_ckpt(tmp_path, tiny_mae_model):
    model = _build(tiny_mae_model)
    return _save(
        tmp_path / 'mae.pth', model.state_dict(), optimizer=dict(state={}))


def test_cli_reports_and_writes(tool, mae_ckpt, tmp_path, capsys):
    dst = str(tmp_path / 'out' / 'vit.pth')  # the folder is created
    assert tool.main([mae_ckpt, dst, '--to', 'mmdet']) == 0
    out = capsys.readouterr().out
    assert 'found: vit backbone (embed_dims=32, num_layers=2' in out
    assert "kept 30 tensors for mmdet under 'backbone.'" in out
    assert 'dropped weights: neck.* (20); dropped training state: ' \
        'optimizer' in out
    assert f'saved to {dst}' in out
    assert ("load with: backbone=dict(type='mmpretrain.VisionTransformer'"
            in out)
    assert f"init_cfg=dict(type='Pretrained', prefix='backbone.', " \
        f"checkpoint='{dst}')" in out
    saved = safe_torch_load(dst)
    assert saved['meta']['converted_by'].endswith('convert_backbone.py')
    assert all(k.startswith('backbone.') for k in saved['state_dict'])


def test_cli_timm_and_notes(tool, mae_ckpt, tmp_path, capsys):
    dst = str(tmp_path / 'timm.pth')
    assert tool.main([mae_ckpt, dst, '--to', 'timm', '--arch', 'vit']) == 0
    out = capsys.readouterr().out
    assert 'kept 30 tensors for timm (no prefix)' in out
    assert 'note: num_heads is not stored in the weights' in out
    assert "timm.create_model('vit_base_patch16_224', pretrained=False, " \
        'num_classes=0, embed_dim=32' in out


def test_cli_d2v2(tool, tmp_path, capsys):
    model = _build(tiny_data2vec2_cfg())
    src = _save(tmp_path / 'd2v2.pth', model.state_dict())
    dst = str(tmp_path / 'seg.pth')
    assert tool.main([src, dst, '--to', 'mmseg']) == 0
    out = capsys.readouterr().out
    assert 'found: d2v2-vit backbone' in out
    assert 'dropped weights: neck.* (6), teacher.* (54)' in out
    assert 'note: data2vec 2.0 is a post-LN ViT: it loads only into ' \
        "type='mmssl.D2V2ViT'" in out
    assert tool.main([src, dst, '--to', 'timm']) == 2
    err = capsys.readouterr().err
    assert 'cannot be exported to timm' in err and 'post-LN' in err


def test_cli_bad_input(tool, tmp_path, capsys):
    dst = str(tmp_path / 'o.pth')
    # no backbone keys
    src = _save(tmp_path / 'heads.pth', {
        'neck.fc.weight': torch.zeros(2, 2),
        'head.fc.bias': torch.zeros(2)
    })
    assert tool.main([src, dst]) == 2
    err = capsys.readouterr().err
    assert "no backbone weights: no key starts with 'backbone.'" in err
    assert 'found:    neck.* (1), head.* (1)' in err
    assert 'expected: backbone.<backbone key>' in err
    assert 'resnet: ResNet' in err and 'vit: pre-LN ViT' in err
    # another architecture than asked for
    resnet = _build(tiny_simclr_cfg())
    src = _save(tmp_path / 'simclr.pth', resnet.state_dict())
    assert tool.main([src, dst, '--arch', 'vit']) == 2
    err = capsys.readouterr().err
    assert "found a 'resnet' backbone, expected 'vit'" in err
    assert 'found:    conv1.* (1), bn1.* (5), layer1.0-1.*' in err
    assert 'expected vit: pre-LN ViT in mmpretrain layout' in err
    assert tool.main([src, dst, '--arch', 'resnet', '--to', 'mmseg']) == 0
    capsys.readouterr()
    # missing file, unknown target
    assert tool.main([str(tmp_path / 'nope.pth'), dst]) == 2
    assert 'does not exist' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        tool.main([src, dst, '--to', 'detectron2'])
    assert not osp.exists(dst + '.tmp')


def test_cli_as_a_script(mae_ckpt, tmp_path, tools_dir):
    """The documented command line, in a fresh interpreter."""
    dst = str(tmp_path / 'seg.pth')
    script = osp.join(tools_dir, 'model_converters', 'convert_backbone.py')
    proc = subprocess.run(
        [sys.executable, script, mae_ckpt, dst, '--to', 'mmseg'],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=osp.dirname(tools_dir),
        env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert proc.returncode == 0, proc.stderr
    assert 'found: vit backbone' in proc.stdout
    state_dict = safe_torch_load(dst)['state_dict']
    assert 'layers.0.attn.attn.in_proj_weight' in state_dict


# --------------------------------------------------------------------------
# a classifier checkpoint with another number of classes
# --------------------------------------------------------------------------
def _resnet_classifier(num_classes):
    return _build(
        dict(
            type='mmpretrain.ImageClassifier',
            backbone=dict(
                type='mmpretrain.ResNet',
                depth=18,
                stem_channels=8,
                base_channels=8),
            neck=dict(type='mmpretrain.GlobalAveragePooling'),
            head=dict(
                type='mmpretrain.LinearClsHead',
                num_classes=num_classes,
                in_channels=64)))


def test_num_classes_mismatch_is_named(tmp_path):
    finetuned = _resnet_classifier(9)
    ckpt = _save(tmp_path / 'ft9.pth', finetuned.state_dict())
    model = _resnet_classifier(2)
    report = compare_state_dict(model, safe_torch_load(ckpt)['state_dict'])
    assert classifier_shape_mismatches(report) == [
        ('head.fc.weight', (9, 64), (2, 64)), ('head.fc.bias', (9, ), (2, ))
    ]
    with pytest.raises(CheckpointMismatchError) as exc:
        check_checkpoint(model, ckpt, 'cls2.py', strict=True)
    msg = str(exc.value)
    assert "number of classes differs: 'head.fc.weight' has 9 classes in " \
        'the checkpoint (shape (9, 64)) but 2 in the model (shape (2, 64))' \
        in msg
    assert "'head.fc.bias' has 9 classes" in msg
    assert 'Set num_classes=9 in model.head' in msg
    assert "prefix='backbone.'" in msg
    # fine-tuning from it (strict=False) only warns, the backbone matches
    report = check_checkpoint(model, ckpt, 'cls2.py', strict=False)
    assert len(report.mismatched) == 2


def test_tool_test_names_num_classes(load_tool_module, tiny_cls_config,
                                     tiny_vit_backbone, tmp_path):
    """tools/test.py with a 9-class ViT checkpoint and a 2-class config."""
    from mmengine.config import Config
    cfg = Config.fromfile(tiny_cls_config).model
    cfg.head.num_classes = 9
    ckpt = _save(tmp_path / 'vit9.pth', _build(cfg).state_dict())
    test_tool = load_tool_module('test.py')
    with pytest.raises(CheckpointMismatchError) as exc:
        test_tool.main(
            [tiny_cls_config, ckpt, '--work-dir',
             str(tmp_path / 'w')])
    msg = str(exc.value)
    assert "number of classes differs: 'head.layers.head.weight' has 9 " \
        'classes in the checkpoint (shape (9, 32)) but 2 in the model ' \
        '(shape (2, 32))' in msg
