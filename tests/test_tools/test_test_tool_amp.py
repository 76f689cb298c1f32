# Copyright (c) mmssl contributors. All rights reserved.
"""tools/test.py --amp without CUDA: bf16 autocast on a CPU with AMX (the
test forward runs under it, the metric stays that of the fp32 run), fp32
with a warning elsewhere."""
import copy

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS

from mmssl.engine import machine_cfg


@pytest.fixture
def cls_ckpt(tmp_path, tiny_cls_config):
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    model = MODELS.build(copy.deepcopy(Config.fromfile(tiny_cls_config).model))
    path = tmp_path / 'cls.pth'
    torch.save(dict(meta=dict(epoch=1), state_dict=model.state_dict()), path)
    return str(path)


def _test_run(test_tool, config, ckpt, work_dir, *extra):
    """Run tools/test.py: its metrics, the autocast dtype each backbone
    forward saw (None: off) and the output dtypes of the linear layers."""
    autocast, linear = [], []

    def record(module, args, output):
        if type(module).__name__ == 'VisionTransformer':
            enabled = torch.is_autocast_enabled('cpu')
            autocast.append(
                torch.get_autocast_dtype('cpu') if enabled else None)
        elif isinstance(module, torch.nn.Linear):  # the products' dtype
            linear.append(output.dtype)

    handle = torch.nn.modules.module.register_module_forward_hook(record)
    try:
        metrics = test_tool.main(
            [config, ckpt, '--work-dir',
             str(work_dir), *extra])
    finally:
        handle.remove()
    return metrics, autocast, linear


@pytest.mark.parametrize('has_amx', [True, False])
def test_amp_tests_in_bf16_on_an_amx_cpu(load_tool_module, tiny_cls_config,
                                         cls_ckpt, tmp_path, monkeypatch,
                                         has_amx):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    monkeypatch.setattr(machine_cfg, 'cpu_has_amx_bf16', lambda: has_amx)
    test_tool = load_tool_module('test.py')
    fp32, autocast32, linear32 = _test_run(test_tool, tiny_cls_config,
                                           cls_ckpt, tmp_path / 'fp32')
    amp, autocast, linear = _test_run(test_tool, tiny_cls_config, cls_ckpt,
                                      tmp_path / 'amp', '--amp')
    # 4 images in batches of 2: two backbone forwards, each with 2 blocks of
    # 4 linear layers (qkv, proj, 2 FFN), then the head's linear layer
    assert autocast32 == [None, None]
    assert linear32 == [torch.float32] * 18
    if has_amx:
        assert autocast == [torch.bfloat16, torch.bfloat16]
        assert linear == [torch.bfloat16] * 18
    else:
        assert (autocast, linear) == (autocast32, linear32)
    assert set(amp) == set(fp32) == {'accuracy/top1'}
    # 2 classes, 4 images: bf16 rounding moves no prediction here
    assert amp['accuracy/top1'] == pytest.approx(fp32['accuracy/top1'])
