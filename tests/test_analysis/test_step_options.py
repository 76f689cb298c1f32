# Copyright (c) mmssl contributors. All rights reserved.
"""The dtype and compilation of a timed training step."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import OptimWrapper

from mmssl.analysis.benchmark import _img_size, build_train_model
from mmssl.analysis.step_options import amp_dtype, maybe_compile

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TINY = osp.join(ROOT, 'configs/mae',
                'mae_vit-tiny-p8_1xb64-coslr-30e_embedded.py')


class AmpOptimWrapper:  # the name is what counts, as for mmengine's wrapper

    def __init__(self, cast_dtype=None):
        self.cast_dtype = cast_dtype


def test_amp_dtype():
    model = torch.nn.Linear(2, 2)
    plain = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    assert amp_dtype(plain) is torch.float32
    assert amp_dtype(AmpOptimWrapper(torch.bfloat16)) is torch.bfloat16
    assert amp_dtype(AmpOptimWrapper(None)) is torch.float16  # mmengine's


def test_img_size_of_models_without_backbone():
    assert _img_size(Config(dict(model=dict(img_size=96)))) == (96, 96)
    assert _img_size(
        Config(
            dict(model=dict(img_size=96, backbone=dict(img_size=32))))) == (32,
                                                                            32)
    assert _img_size(Config(dict(model=dict()))) == (224, 224)


def test_compile_setting_keeps_the_loss():
    cfg = Config.fromfile(TINY)
    model, _, _ = build_train_model(cfg)
    assert not maybe_compile(model, cfg)
    images = torch.randn(2, 3, 64, 64)
    noise = torch.rand(2, 64)
    model.backbone.forward = lambda x, mask=True, _f=model.backbone.forward: \
        _f(x, mask, noise=noise)
    eager = model(images, [], mode='loss')['loss']
    cfg.compile = dict(backend='eager')
    assert maybe_compile(model, cfg)
    assert model(
        images, [], mode='loss')['loss'].item() == pytest.approx(
            eager.item(), rel=1e-6)
    cfg.compile = 'yes'
    with pytest.raises(TypeError, match='compile'):
        maybe_compile(model, cfg)
