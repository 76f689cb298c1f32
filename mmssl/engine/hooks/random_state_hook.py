# Copyright (c) mmssl contributors. All rights reserved.
"""Save and restore the random number generators with each checkpoint."""
import random
from typing import Optional

import numpy as np
import torch
from mmengine.hooks import Hook

from mmssl.registry import HOOKS


@HOOKS.register_module()
class RandomStateHook(Hook):
    """Make ``--resume`` continue the exact random stream of the run.

    mmengine checkpoints hold weights, optimizer, schedulers and the message
    hub, but not the state of the random number generators, so a resumed run
    draws other masks and augmentations than the uninterrupted one. This hook
    stores the Python, NumPy and torch (CPU and CUDA) generator states in the
    checkpoint under ``random_state`` and restores them on resume, so that
    "2 epochs + resume to 4" equals "4 epochs straight".

    It is part of mmssl's default runtime (``default_hooks.random_state``).
    Data-loader workers are seeded by mmengine from ``randomness.seed``; with
    ``persistent_workers=True`` their streams also live across epochs, so an
    exact resume needs ``persistent_workers=False`` or ``num_workers=0``.
    """

    priority = 'VERY_LOW'

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        np_state = np.random.get_state()
        state = dict(
            python=random.getstate(),
            numpy=dict(
                kind=np_state[0],
                keys=torch.from_numpy(np_state[1].astype(np.int64)),
                pos=int(np_state[2]),
                has_gauss=int(np_state[3]),
                cached_gaussian=float(np_state[4])),
            torch=torch.get_rng_state())
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state['cuda'] = torch.cuda.get_rng_state_all()
        checkpoint['random_state'] = state

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state: Optional[dict] = checkpoint.get('random_state')
        if state is None:
            return
        random.setstate(_to_tuple(state['python']))
        npst = state['numpy']
        np.random.set_state(
            (npst['kind'], npst['keys'].numpy().astype(np.uint32),
             npst['pos'], npst['has_gauss'], npst['cached_gaussian']))
        torch.set_rng_state(state['torch'])
        if 'cuda' in state and torch.cuda.is_available():
            cuda_states = state['cuda']
            if len(cuda_states) == torch.cuda.device_count():
                torch.cuda.set_rng_state_all(cuda_states)


def _to_tuple(obj):
    """Lists back to tuples (``random.setstate`` needs tuples)."""
    if isinstance(obj, (list, tuple)):
        return tuple(_to_tuple(o) for o in obj)
    return obj
