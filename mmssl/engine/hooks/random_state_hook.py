# Copyright (c) mmssl contributors. All rights reserved.
"""Save and restore the random number generators with each checkpoint, and
seed every training sample's augmentations from (seed, epoch, index)."""
import random
from typing import Any, Optional

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.logging import print_log

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

    With ``num_workers=0`` the pipeline draws from the main process's
    generators, which the checkpoint holds. Data-loader workers keep random
    streams of their own, which no checkpoint can hold (with
    ``persistent_workers=True`` they even run on across epochs). With
    ``seed_samples=True`` (the default) and ``num_workers > 0`` the hook
    therefore wraps the training data set's pipeline so that each sample's
    augmentations are drawn from generators seeded by ``(randomness seed,
    epoch, sample index)``, and gives the data loader a generator of its own
    for the workers' base seed, so that starting workers does not shift the
    main process's stream. A sample's views then do not depend on where the
    run was interrupted, and resume is exact with worker processes,
    persistent or not. Epoch-based loops only; with an iteration-based loop,
    a data set without a ``pipeline`` or a wrapper data set
    (``RepeatDataset``, ``ConcatDataset``, ...) nothing is wrapped and the
    log says so.

    Args:
        seed_samples (bool): seed each training sample's pipeline.
            Defaults to True.
    """

    priority = 'VERY_LOW'

    def __init__(self, seed_samples: bool = True) -> None:
        self.seed_samples = seed_samples
        self._epoch: Optional[torch.Tensor] = None

    def before_train(self, runner) -> None:
        if not self.seed_samples:
            return
        from mmengine.runner import EpochBasedTrainLoop
        loader = runner.train_dataloader
        if getattr(loader, 'num_workers', 0) == 0:
            return
        dataset = getattr(loader, 'dataset', None)
        pipeline = getattr(dataset, 'pipeline', None)
        reason = None
        if not isinstance(runner.train_loop, EpochBasedTrainLoop):
            reason = 'the train loop is not epoch based'
        elif pipeline is None or not callable(pipeline):
            reason = (f'{type(dataset).__name__} has no callable `pipeline` '
                      '(a wrapper data set?)')
        if reason is not None:
            print_log(
                f'RandomStateHook: per-sample seeding is off ({reason}); '
                'resume is exact only with num_workers=0.',
                logger='current')
            return
        if loader.generator is None:
            loader.generator = torch.Generator().manual_seed(int(runner.seed))
        if isinstance(pipeline, SampleSeededPipeline):
            self._epoch = pipeline.epoch
            return
        # shared memory: persistent workers see the epoch the hook sets
        self._epoch = torch.zeros(1, dtype=torch.int64).share_memory_()
        dataset.pipeline = SampleSeededPipeline(pipeline, int(runner.seed),
                                                self._epoch)

    def before_train_epoch(self, runner) -> None:
        if self._epoch is not None:
            self._epoch[0] = runner.epoch

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


class SampleSeededPipeline:
    """A data pipeline whose randomness depends on (seed, epoch, sample).

    Before each call the Python, NumPy and torch generators are seeded from
    ``SeedSequence([seed, epoch, sample_idx])``; after it they are put back
    as they were, so the caller's random stream is not disturbed.

    Args:
        pipeline (Callable): the data set's pipeline (``Compose``).
        seed (int): the run's random seed.
        epoch (torch.Tensor): a one-element shared tensor holding the epoch.
    """

    def __init__(self, pipeline, seed: int, epoch: torch.Tensor) -> None:
        self.pipeline = pipeline
        self.seed = int(seed) % (2**32)
        self.epoch = epoch

    def __call__(self, data_info: dict) -> Any:
        idx = data_info.get('sample_idx') if isinstance(data_info,
                                                        dict) else None
        if idx is None:
            return self.pipeline(data_info)
        entropy = [self.seed, int(self.epoch[0]), int(idx)]
        s_py, s_np, s_pt = random.getstate(), np.random.get_state(), \
            torch.get_rng_state()
        try:
            state = np.random.SeedSequence(entropy).generate_state(2)
            random.seed(int(state[0]))
            np.random.seed(int(state[0]))
            torch.manual_seed(int(state[1]))
            return self.pipeline(data_info)
        finally:
            random.setstate(s_py)
            np.random.set_state(s_np)
            torch.set_rng_state(s_pt)

    def __getattr__(self, name: str) -> Any:
        # ``transforms`` and friends of the wrapped Compose stay reachable
        if name in ('pipeline', 'seed', 'epoch'):
            raise AttributeError(name)
        return getattr(self.pipeline, name)

    def __repr__(self) -> str:
        return f'SampleSeededPipeline({self.pipeline!r})'


def _to_tuple(obj):
    """Lists back to tuples (``random.setstate`` needs tuples)."""
    if isinstance(obj, (list, tuple)):
        return tuple(_to_tuple(o) for o in obj)
    return obj
