# Copyright (c) mmssl contributors. All rights reserved.
"""The exact-resume check shared by every method's resume test.

``assert_resume_equals_straight(make_cfg, tmp_dir)`` trains 4 epochs
straight, 2 epochs, then resumes the 2-epoch checkpoint to 4, and asserts
that every entry of the model's ``state_dict`` (weights, buffers such as
queues, teacher copies and EMA steps) equals the straight run, and that
epochs 3-4 did move the weights (so the equality is not vacuous). With
``world_size > 1`` every run is a fresh launch of that many gloo processes
(:func:`mmssl.testing.dist.train_runner_distributed`).
"""
import copy
import os.path as osp
import uuid
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


def own_experiment_name(cfg) -> Config:
    """A copy of ``cfg`` as a Config with an ``experiment_name`` of its own.

    mmengine names a run's message hub and logger after the experiment name,
    by default the launch time to the second, and reuses an existing
    instance of that name, so two short runs started in the same second
    would share their message hub (``keep_ckpt_ids``, ``last_ckpt``...).
    """
    cfg = copy.deepcopy(cfg) if isinstance(cfg, Config) else Config(
        copy.deepcopy(cfg))
    if not cfg.get('experiment_name'):
        cfg.experiment_name = f'run_{uuid.uuid4().hex[:8]}'
    return cfg


def train_state(cfg, world_size: int = 1) -> StateDict:
    """Train a runner config; return a copy of the model's state dict.

    With ``world_size > 1`` the config is trained in that many gloo
    processes (rank 0's state dict is returned).
    """
    cfg = own_experiment_name(cfg)
    if world_size > 1:
        from .dist import train_runner_distributed
        return train_runner_distributed(cfg, world_size)
    runner = Runner.from_cfg(cfg)
    runner.train()
    return {
        k: v.detach().clone()
        for k, v in runner.model.state_dict().items()
    }


def assert_resume_equals_straight(
        make_cfg: Callable[[str, int, Optional[str]], dict],
        tmp_dir: str,
        atol: float = 1e-6,
        min_move: float = 1e-4,
        world_size: int = 1) -> Tuple[StateDict, StateDict, dict]:
    """2 epochs + ``--resume`` to 4 must equal 4 epochs straight.

    Args:
        make_cfg (Callable): ``make_cfg(work_dir, max_epochs, resume_from)``
            returns a runner config (dict or Config) whose schedule spans 4
            epochs and which saves a checkpoint every epoch.
        tmp_dir (str): a scratch folder (work dirs ``a``, ``b``, ``c``).
        atol (float): tolerance of the comparison.
        min_move (float): the largest change of any weight between epoch 2
            and epoch 4 must exceed this.
        world_size (int): train every run in this many gloo processes.
            Defaults to 1 (in this process).

    Returns:
        tuple: the straight state dict, the resumed one and the raw epoch-2
        checkpoint (loaded weights-only), for method-specific checks.
    """
    straight = train_state(
        make_cfg(osp.join(tmp_dir, 'a'), 4, None), world_size)
    train_state(make_cfg(osp.join(tmp_dir, 'b'), 2, None), world_size)
    ckpt = osp.join(tmp_dir, 'b', 'epoch_2.pth')
    assert osp.exists(ckpt), f'no checkpoint written at {ckpt}'
    # weights-only loadable (no pickled code), with the random state
    raw = torch.load(ckpt, weights_only=True)
    assert 'random_state' in raw, 'the checkpoint has no random state'
    saved = raw['random_state']
    if 'ranks' in saved:
        assert len(saved['ranks']) == world_size, (
            f'the checkpoint holds {len(saved["ranks"])} random states, '
            f'expected one per process ({world_size})')
    resumed = train_state(
        make_cfg(osp.join(tmp_dir, 'c'), 4, ckpt), world_size)
    assert straight.keys() == resumed.keys()
    for k in straight:
        torch.testing.assert_close(
            resumed[k],
            straight[k],
            atol=atol,
            rtol=0,
            msg=lambda m, k=k: f'{k} differs from the straight run: {m}')
    two = raw['state_dict']
    moved = max(
        (two[k].float() - straight[k].float()).abs().max().item() for k in two)
    assert moved > min_move, f'epochs 3-4 changed nothing ({moved})'
    return straight, resumed, raw
