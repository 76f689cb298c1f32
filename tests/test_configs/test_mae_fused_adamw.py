# Copyright (c) mmssl contributors. All rights reserved.
"""The MAE configs' fused AdamW (ViT-B and the ViT-tiny demo) makes the same
update as torch's per-tensor AdamW (what the configs ran before and what
lightly runs)."""
import copy
import os.path as osp

import torch
from mmengine.config import Config

from mmssl.analysis.benchmark import build_train_model, make_synthetic_batch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TINY = osp.join(ROOT, 'configs/mae',
                'mae_vit-tiny-p8_1xb64-coslr-30e_embedded.py')
VITB = [
    osp.join(ROOT, 'configs/mae', name)
    for name in ('mae_vit-base-p16_8xb512-amp-coslr-800e_in1k.py',
                 'mae_vit-base-p16_8xb512-amp-coslr-1600e_in1k.py',
                 'mae_vit-base-p16_1xb128-amp-coslr-30e_embedded224.py')
]


def _train(optimizer_cfg, steps=3):
    cfg = Config.fromfile(TINY)
    cfg.optim_wrapper.optimizer = copy.deepcopy(optimizer_cfg)
    torch.manual_seed(0)
    model, wrapper, _ = build_train_model(cfg)
    data = model.data_preprocessor.cast_data(make_synthetic_batch(cfg, 4))
    losses = []
    for _ in range(steps):
        torch.manual_seed(1)  # the same masks in both runs
        losses.append(model.train_step(data, wrapper)['loss'].item())
    return model, wrapper, losses


def test_vitb_and_tiny_configs_use_the_fused_adamw():
    for path in VITB + [TINY]:
        opt = Config.fromfile(path).optim_wrapper.optimizer
        assert opt.type == 'AdamW' and opt.fused is True, path


def test_fused_update_equals_the_per_tensor_one():
    opt = Config.fromfile(VITB[0]).optim_wrapper.optimizer
    fused, fused_wrapper, fused_losses = _train(opt)
    plain_cfg = copy.deepcopy(opt)
    plain_cfg.fused = None
    plain, plain_wrapper, plain_losses = _train(plain_cfg)
    assert fused_wrapper.optimizer.defaults['fused'] is True
    assert not plain_wrapper.optimizer.defaults['fused']
    assert torch.allclose(
        torch.tensor(fused_losses), torch.tensor(plain_losses), rtol=1e-5)
    start = dict(_train(plain_cfg, steps=0)[0].named_parameters())
    moved = off = total = 0
    for (name, a), (_, b) in zip(fused.named_parameters(),
                                 plain.named_parameters()):
        moved += int(not torch.equal(b, start[name]))
        off += int(((a - b).abs() > 1e-6).sum())
        total += a.numel()
    # the same update up to rounding, except where a gradient is rounding
    # noise itself (the key bias, whose exact gradient is zero: Adam turns
    # its noise into lr-sized steps of either sign in both implementations)
    assert off <= 1e-3 * total, (off, total)
    assert moved > 50  # the comparison is about parameters that trained
