# Copyright (c) mmssl contributors. All rights reserved.
"""load_official_mae: the weights of an official MAE checkpoint file (its
conversion is tested against a reference forward in
tests/test_tools/test_model_converters.py)."""
import argparse

import pytest
import torch

from mmssl.converters import load_official_mae


@pytest.mark.parametrize('layout', ['model', 'state_dict', 'bare'])
def test_weights_of_each_layout(tmp_path, layout):
    weights = {'cls_token': torch.ones(1, 1, 4)}
    ckpt = weights if layout == 'bare' else {
        layout: weights,
        # main_pretrain.py stores its argparse arguments
        'args': argparse.Namespace(model='mae_vit_base_patch16'),
        'epoch': 799
    }
    path = str(tmp_path / 'mae.pth')
    torch.save(ckpt, path)
    out = load_official_mae(path)
    assert list(out) == ['cls_token']
    assert torch.equal(out['cls_token'], weights['cls_token'])


def test_namespace_is_allowed_for_this_call_only(tmp_path):
    path = str(tmp_path / 'mae.pth')
    torch.save({'model': {}, 'args': argparse.Namespace(lr=1.)}, path)
    load_official_mae(path)
    with pytest.raises(Exception, match='Namespace'):
        torch.load(path, weights_only=True)


def test_non_dict_file_is_returned_as_it_is(tmp_path):
    path = str(tmp_path / 'tensor.pth')
    torch.save(torch.arange(3), path)
    assert torch.equal(load_official_mae(path), torch.arange(3))
