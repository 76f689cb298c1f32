# Copyright (c) mmssl contributors. All rights reserved.
"""mmssl.LinearAnnealEMA (spec data2vec2.md 3): defaults, ranges, the copied
frozen parameters and the fp32 copy (schedule values and the averaging
itself are in test_data2vec2.py)."""
import pytest
import torch
import torch.nn as nn

from mmssl.models.utils import LinearAnnealEMA
from mmssl.models.utils.ema import annealed_decay


def test_defaults_are_fairseqs_image_schedule():
    ema = LinearAnnealEMA(nn.Linear(2, 2))
    assert (ema.momentum, ema.end_momentum, ema.anneal_iters,
            ema.interval) == (2e-4, 1e-5, 100000, 1)
    assert not ema.update_buffers


def test_no_anneal_is_the_end_decay_from_the_start():
    assert annealed_decay(0, 0.5, 0.9, 0) == 0.9
    ema = LinearAnnealEMA(
        nn.Linear(2, 2), momentum=0.5, end_momentum=0.1, anneal_iters=0)
    assert ema.decay_at(0) == ema.decay_at(7) == 0.9


def test_momentum_range_zero_in_one_out():
    """0 is a frozen teacher (legal, though mmengine's own class refuses
    it); 1 would replace the teacher by the student."""
    student = nn.Linear(2, 2)
    frozen = LinearAnnealEMA(student, momentum=0., end_momentum=0.)
    before = frozen.module.weight.clone()
    with torch.no_grad():
        student.weight.add_(1.)
    assert frozen.update_parameters(student) == 1.
    assert torch.equal(frozen.module.weight, before)
    for key in ('momentum', 'end_momentum'):
        with pytest.raises(ValueError, match=key):
            LinearAnnealEMA(student, **{key: 1.})
    with pytest.raises(ValueError, match='anneal_iters'):
        LinearAnnealEMA(student, anneal_iters=-1)


def test_frozen_parameters_are_copied_also_with_buffers_averaged():
    """fairseq copies non-trainable parameters (fixed position embeddings)
    instead of averaging them, with or without update_buffers."""
    for update_buffers in (False, True):
        student = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
        student[0].bias.requires_grad_(False)
        ema = LinearAnnealEMA(
            student,
            momentum=0.5,
            end_momentum=0.5,
            update_buffers=update_buffers)
        old = ema.module[0].weight.clone()
        with torch.no_grad():
            student[0].weight.add_(2.)
            student[0].bias.add_(2.)
            student[1].running_mean.add_(2.)
        ema.update_parameters(student)
        assert torch.equal(ema.module[0].bias, student[0].bias)
        torch.testing.assert_close(ema.module[0].weight,
                                   (old + student[0].weight) / 2)
        mean = ema.module[1].running_mean
        assert mean.tolist() == ([1., 1.] if update_buffers else [2., 2.])


def test_half_holder_keeps_fp32_weights_and_integer_buffers():
    holder = nn.Module()
    holder.ema = LinearAnnealEMA(
        nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2)))
    holder.half()
    assert holder.ema.module[0].weight.dtype == torch.float32
    assert holder.ema.module[1].running_var.dtype == torch.float32
    assert holder.ema.module[1].num_batches_tracked.dtype == torch.int64
    assert holder.ema.steps.dtype == torch.int64
