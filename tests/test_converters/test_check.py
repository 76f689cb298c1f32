# Copyright (c) mmssl contributors. All rights reserved.
"""check_backbone_state: exported weights must fit the backbone exactly,
and the error says how they do not."""
import pytest
import torch
import torch.nn as nn

from mmssl.converters import ConversionError, check_backbone_state


def _net():
    """Keys 0.weight, 0.bias, 1.weight, 1.bias, 1.running_mean,
    1.running_var, 1.num_batches_tracked."""
    return nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))


def test_fitting_weights_pass_without_num_batches_tracked():
    net = _net()
    sd = {
        k: v
        for k, v in net.state_dict().items()
        if not k.endswith('num_batches_tracked')
    }
    check_backbone_state(sd, net)
    check_backbone_state(
        {'state_dict': {
            f'backbone.{k}': v
            for k, v in sd.items()
        }}, net)


def test_missing_weight_is_reported():
    sd = _net().state_dict()
    del sd['1.running_var']
    with pytest.raises(ConversionError) as err:
        check_backbone_state(sd, _net())
    lines = str(err.value).splitlines()
    assert lines[0] == 'the weights do not fit Sequential:'
    assert lines[-1] == '  1 missing: 1.* (1)'


def test_unexpected_weight_is_reported():
    sd = dict(_net().state_dict(), extra=torch.zeros(1))
    with pytest.raises(ConversionError, match='1 unexpected: extra'):
        check_backbone_state(sd, _net())


def test_first_5_shape_mismatches_are_listed():
    net = nn.Sequential(*[nn.Linear(2, 2) for _ in range(3)])
    sd = {k: torch.zeros(5) for k in net.state_dict()}
    with pytest.raises(ConversionError) as err:
        check_backbone_state(sd, net)
    msg = str(err.value)
    assert '6 weights of another shape: ' in msg
    for i, key in enumerate(net.state_dict()):
        expected = f'{key!r} checkpoint (5,) vs model'
        assert (expected in msg) == (i < 5), key
