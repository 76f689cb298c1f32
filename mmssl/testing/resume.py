# Copyright (c) mmssl contributors. All rights reserved.
"""The exact-resume check shared by every method's resume test.

``assert_resume_equals_straight(make_cfg, tmp_dir)`` trains 4 epochs
straight, 2 epochs, then resumes the 2-epoch checkpoint to 4, and asserts
that every entry of the model's ``state_dict`` (weights, buffers such as
queues, teacher copies and EMA steps) equals the straight run, and that
epochs 3-4 did move the weights (so the equality is not vacuous).
"""
import os.path as osp
from typing import Callable, Dict, Optional, Tuple

import torch
from mmengine.config import Config
from mmengine.runner import Runner

StateDict = Dict[str, torch.Tensor]


def two_view_transform(scale: int) -> dict:
    """SimCLR / MoCo-style two random views (crop, flip, colour jitter,
    grayscale) of ``scale`` pixels, as a ``MultiView`` transform."""
    return dict(
        type='MultiView',
        num_views=2,
        transforms=[[
            dict(
                type='RandomResizedCrop',
                scale=scale,
                crop_ratio_range=(0.3, 1),
                backend='pillow'),
            dict(type='RandomFlip', prob=0.5),
            dict(
                type='RandomApply',
                transforms=[
                    dict(
                        type='ColorJitter',
                        brightness=0.4,
                        contrast=0.4,
                        saturation=0.4,
                        hue=0.1)
                ],
                prob=0.8),
            dict(type='RandomGrayscale', prob=0.2, keep_channels=True),
        ]])


def train_state(cfg) -> StateDict:
    """Train a runner config; return a copy of the model's state dict."""
    runner = Runner.from_cfg(cfg if isinstance(cfg, Config) else Config(cfg))
    runner.train()
    return {
        k: v.detach().clone()
        for k, v in runner.model.state_dict().items()
    }


def assert_resume_equals_straight(
        make_cfg: Callable[[str, int, Optional[str]], dict],
        tmp_dir: str,
        atol: float = 1e-6,
        min_move: float = 1e-4) -> Tuple[StateDict, StateDict, dict]:
    """2 epochs + ``--resume`` to 4 must equal 4 epochs straight.

    Args:
        make_cfg (Callable): ``make_cfg(work_dir, max_epochs, resume_from)``
            returns a runner config (dict or Config) whose schedule spans 4
            epochs and which saves a checkpoint every epoch.
        tmp_dir (str): a scratch folder (work dirs ``a``, ``b``, ``c``).
        atol (float): tolerance of the comparison.
        min_move (float): the largest change of any weight between epoch 2
            and epoch 4 must exceed this.

    Returns:
        tuple: the straight state dict, the resumed one and the raw epoch-2
        checkpoint (loaded weights-only), for method-specific checks.
    """
    straight = train_state(make_cfg(osp.join(tmp_dir, 'a'), 4, None))
    train_state(make_cfg(osp.join(tmp_dir, 'b'), 2, None))
    ckpt = osp.join(tmp_dir, 'b', 'epoch_2.pth')
    assert osp.exists(ckpt), f'no checkpoint written at {ckpt}'
    # weights-only loadable (no pickled code), with the random state
    raw = torch.load(ckpt, weights_only=True)
    assert 'random_state' in raw, 'the checkpoint has no random state'
    resumed = train_state(make_cfg(osp.join(tmp_dir, 'c'), 4, ckpt))
    assert straight.keys() == resumed.keys()
    for k in straight:
        torch.testing.assert_close(
            resumed[k], straight[k], atol=atol, rtol=0, msg=k)
    two = raw['state_dict']
    moved = max((two[k].float() - straight[k].float()).abs().max().item()
                for k in two)
    assert moved > min_move, f'epochs 3-4 changed nothing ({moved})'
    return straight, resumed, raw
