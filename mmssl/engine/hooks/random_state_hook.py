# Copyright (c) mmssl contributors. All rights reserved.
"""Save and restore every process's random number generators with each
checkpoint, and seed every training sample's augmentations from (seed,
epoch, index)."""
import logging
import random
from typing import Any, List, Optional, Tuple

import numpy as np
import torch
from mmengine.dist import all_gather_object, get_dist_info
from mmengine.hooks import Hook
from mmengine.logging import print_log

from mmssl.registry import HOOKS


@HOOKS.register_module()
class RandomStateHook(Hook):
    """Make ``--resume`` continue the exact random stream of the run.

    mmengine checkpoints hold weights, optimizer, schedulers and the message
    hub, but not the state of the random number generators, so a resumed run
    draws other masks and augmentations than the uninterrupted one. This hook
    stores the Python, NumPy and torch (CPU and CUDA) generator states of
    *every process* in the checkpoint and restores them on resume, so that
    "2 epochs + resume to 4" equals "4 epochs straight", with one process or
    several (also with ``randomness.diff_rank_seed=True``, where each process
    has a random stream of its own).

    The checkpoint holds ``random_state = dict(world_size=W, ranks=[...])``,
    one entry per rank. ``CheckpointHook`` (as patched by mmssl, see
    :mod:`mmssl.utils.checkpoint_save`) calls
    :meth:`before_save_checkpoint_all_ranks` on every rank before it saves,
    where the ranks' states are gathered to all ranks; rank 0 writes them.
    A checkpoint saved another way (``runner.save_checkpoint`` alone) holds
    rank 0's state only. Checkpoints of older mmssl versions hold a single
    state, which every rank restores, as before.

    The states are restored in :meth:`before_train` of a resumed run (after
    the runner re-seeded for the checkpoint's seed, just before training
    goes on), not when weights are only loaded (``load_from`` without
    ``resume``), which leaves the ``randomness`` config in charge. The seed
    of the training sampler (``DefaultSampler.seed``) is saved and restored
    too: with ``randomness.seed=None`` a resumed run builds its sampler with
    a new random seed before the checkpoint is loaded, and would shuffle
    the remaining epochs differently.

    **Changing the number of processes**: the data each process reads and
    its random stream depend on the number of processes, so such a resume
    cannot be bit-exact. It goes on with a warning: each rank below the
    saved number of processes restores the state saved by the same rank,
    the others keep the state set by ``randomness``.

    It is part of mmssl's default runtime (``default_hooks.random_state``).

    With ``num_workers=0`` the pipeline draws from the main process's
    generators, which the checkpoint holds. Data-loader workers keep random
    streams of their own, which no checkpoint can hold (with
    ``persistent_workers=True`` they even run on across epochs). With
    ``seed_samples=True`` (the default) and ``num_workers > 0`` the hook
    therefore wraps the training data set's pipeline so that each sample's
    augmentations are drawn from generators seeded by ``(seed, epoch,
    sample index)``, where ``seed`` is the runner's seed (per rank with
    ``diff_rank_seed``, restored by mmengine on resume), and gives the data
    loader a generator of its own for the workers' base seed, so that
    starting workers does not shift the main process's stream (that
    generator is not saved: mmengine's ``worker_init_fn`` re-seeds every
    worker, and the seeded pipeline does not depend on it). A sample's views
    then do not depend on where the run was interrupted, and resume is exact
    with worker processes, persistent or not. Epoch-based loops only; with
    an iteration-based loop, a data set without a ``pipeline`` or a wrapper
    data set (``RepeatDataset``, ``ConcatDataset``, ...) nothing is wrapped
    and the log says so.

    Args:
        seed_samples (bool): seed each training sample's pipeline.
            Defaults to True.
    """

    priority = 'VERY_LOW'

    def __init__(self, seed_samples: bool = True) -> None:
        self.seed_samples = seed_samples
        self._epoch: Optional[torch.Tensor] = None
        # every rank's state, gathered just before CheckpointHook saves
        self._gathered: Optional[List[dict]] = None
        # the ``random_state`` of the checkpoint loaded last, until restored
        self._loaded: Optional[dict] = None

    def before_train(self, runner) -> None:
        self._seed_samples(runner)
        self._restore_loaded(runner)

    def _seed_samples(self, runner) -> None:
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

    def before_save_checkpoint_all_ranks(self, runner) -> None:
        """Gather every rank's generator states (called on all ranks by
        mmssl's ``CheckpointHook`` just before it saves)."""
        self._gathered = all_gather_object(get_random_state())

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        _, world_size = get_dist_info()
        states, self._gathered = self._gathered, None
        if states is None or len(states) != world_size:
            # saved outside CheckpointHook: this process's state only
            states = [get_random_state()]
        saved = dict(world_size=world_size, ranks=states)
        sampler_seed = getattr(_train_sampler(runner), 'seed', None)
        if isinstance(sampler_seed, int):
            saved['sampler_seed'] = sampler_seed
        checkpoint['random_state'] = saved

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        # restored in before_train, and only if the run resumes
        self._loaded = checkpoint.get('random_state')

    def _restore_loaded(self, runner) -> None:
        saved, self._loaded = self._loaded, None
        if saved is None or (runner.iter == 0 and runner.epoch == 0):
            return  # nothing loaded, or weights loaded without resuming
        rank, world_size = get_dist_info()
        state, message = select_random_state(saved, rank, world_size)
        if message is not None:
            print_log(
                f'RandomStateHook: {message}',
                logger='current',
                level=logging.WARNING)
        if state is not None:
            set_random_state(state)
        # with ``randomness.seed=None`` the resumed run built its sampler
        # with a seed of its own before the checkpoint was loaded
        sampler = _train_sampler(runner)
        sampler_seed = saved.get('sampler_seed')
        if sampler_seed is not None and isinstance(
                getattr(sampler, 'seed', None), int):
            sampler.seed = int(sampler_seed)


def _train_sampler(runner) -> Optional[Any]:
    """The training data loader's sampler, if the loader is built."""
    loader = getattr(getattr(runner, '_train_loop', None), 'dataloader', None)
    return getattr(loader, 'sampler', None)


def get_random_state() -> dict:
    """This process's Python, NumPy, torch CPU (and, once initialised, CUDA)
    generator states, in a form ``torch.load(weights_only=True)`` reads."""
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
    return state


def set_random_state(state: dict) -> None:
    """Restore a state of :func:`get_random_state`. CUDA states are restored
    when the number of visible devices is the same."""
    random.setstate(_to_tuple(state['python']))
    npst = state['numpy']
    np.random.set_state(
        (npst['kind'], npst['keys'].numpy().astype(np.uint32), npst['pos'],
         npst['has_gauss'], npst['cached_gaussian']))
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        cuda_states = state['cuda']
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)


def select_random_state(
        saved: dict, rank: int,
        world_size: int) -> Tuple[Optional[dict], Optional[str]]:
    """Pick rank ``rank``'s entry of a checkpoint's ``random_state``.

    Args:
        saved (dict): ``checkpoint['random_state']``, either
            ``dict(world_size=W, ranks=[...])`` or (older checkpoints) a
            single state.
        rank (int): this process's rank.
        world_size (int): the number of processes of this run.

    Returns:
        tuple: the state to restore (None: keep the current one) and a
        warning for the log when the resume is not bit-exact (else None).
    """
    if 'ranks' not in saved:
        if world_size == 1:
            return saved, None
        return saved, (
            'the checkpoint holds a single random state (written by an '
            f'older mmssl); all {world_size} processes restore it, so the '
            'resume is not bit-exact unless every process drew the same '
            'random numbers (randomness.diff_rank_seed=False).')
    saved_world = int(saved['world_size'])
    entries = list(saved['ranks'])
    state = entries[rank] if rank < len(entries) else None
    if saved_world != world_size:
        kept = min(len(entries), world_size)
        return state, (
            f'the checkpoint was saved by {saved_world} process(es), this '
            f'run has {world_size}: the resume is not bit-exact (the data '
            'each process reads and its random stream depend on the number '
            f'of processes). Ranks below {kept} restore the random state '
            'saved by the same rank, the others keep the state set by '
            '`randomness`.')
    if len(entries) < world_size:
        return state, (
            f'the checkpoint holds the random state of {len(entries)} of '
            f'its {saved_world} processes (it was not saved by '
            f'CheckpointHook); ranks {len(entries)} to {world_size - 1} keep '
            'the state set by `randomness`, so the resume is not bit-exact.')
    return state, None


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
