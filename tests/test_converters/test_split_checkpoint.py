# Copyright (c) mmssl contributors. All rights reserved.
"""split_checkpoint, describe_keys and extract_prefixed of
mmssl.converters.checkpoint."""
import torch

from mmssl.converters import describe_keys, extract_prefixed, split_checkpoint


def test_bare_state_dict_keeps_its_weights():
    """A state dict saved without ``state_dict`` / ``model``: the tensors
    are the weights; training state and meta are not."""
    ckpt = {
        'module.w': torch.ones(2),
        'b': torch.zeros(1),
        'meta': {
            'epoch': 3
        },
        'optimizer': {
            'state': {}
        },
        'scaler': torch.ones(1),
    }
    state_dict, meta, dropped = split_checkpoint(ckpt)
    assert list(state_dict) == ['w', 'b']
    assert meta == {'epoch': 3}
    assert dropped == ['optimizer', 'scaler']


def test_runner_checkpoint():
    ckpt = {
        'meta': {
            'epoch': 1
        },
        'state_dict': {
            'backbone.w': torch.ones(1)
        },
        'message_hub': {}
    }
    state_dict, meta, dropped = split_checkpoint(ckpt)
    assert list(state_dict) == ['backbone.w'] and meta == {'epoch': 1}
    assert dropped == ['message_hub']


def test_describe_keys_shows_12_groups():
    keys = [f'g{i}.w' for i in range(14)]
    text = describe_keys(keys)
    assert text == ', '.join(f'g{i}.* (1)'
                             for i in range(12)) + ', ... (2 more groups)'
    assert describe_keys(keys[:12]).endswith('g11.* (1)')
    assert describe_keys([]) == 'no weights'


def test_describe_keys_collapses_numbered_children():
    keys = [
        'cls_token', 'layers.0.w', 'layers.3.b', 'ln.w', 'ln.b', 'head.0',
        'head.1', 'stem.2.conv.w'
    ]
    assert describe_keys(keys) == ('cls_token, layers.0-3.* (2), ln.* (2), '
                                   'head.* (2), stem.* (1)')


def test_extract_prefixed_adds_the_dot():
    sd = {
        'backbone.w': torch.ones(1),
        'backbone_ema.w': torch.ones(1),
        'neck.a': torch.ones(1),
        'neck.b': torch.ones(1)
    }
    kept, dropped = extract_prefixed(sd, 'backbone')
    assert list(kept) == ['w']
    assert dropped == {'backbone_ema': 1, 'neck': 2}
