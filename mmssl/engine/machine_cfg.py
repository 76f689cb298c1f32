# Copyright (c) mmssl contributors. All rights reserved.
"""Adapting a config to the machine it runs on.

``--amp`` and NCCL configs keep working on a machine without CUDA (fp32,
``gloo``, DDP without ``device_ids``); dataloader defaults fill what a config
leaves out; :func:`build_runner` honours ``runner_type``.
"""
import contextlib
import logging
import os
from typing import Iterator, Optional, Sequence

import torch
from mmengine.config import Config, ConfigDict
from mmengine.logging import print_log

from .optimizers.cpu_amp import cpu_has_amx_bf16
from .tool_errors import ToolError

__all__ = [
    'AMP_WRAPPERS', 'is_amp_wrapper', 'to_fp32_wrapper', 'configure_amp',
    'configure_test_amp', 'configure_distributed',
    'set_default_dataloader_cfg', 'build_runner'
]

AMP_WRAPPERS = ('AmpOptimWrapper', 'mmengine.AmpOptimWrapper')
_AMP_ONLY_KEYS = ('loss_scale', 'dtype', 'use_fsdp')


def is_amp_wrapper(wrapper: dict) -> bool:
    """Whether an ``optim_wrapper`` config builds an ``AmpOptimWrapper``."""
    return wrapper.get('type', 'OptimWrapper') in AMP_WRAPPERS


def to_fp32_wrapper(wrapper: dict) -> bool:
    """Make an ``AmpOptimWrapper`` config a plain ``OptimWrapper`` one, in
    place (its ``loss_scale``, ``dtype`` and ``use_fsdp`` dropped).

    Returns:
        bool: whether ``wrapper`` was an ``AmpOptimWrapper`` config (else it
        is left as it is).
    """
    if not is_amp_wrapper(wrapper):
        return False
    wrapper['type'] = 'OptimWrapper'
    for key in _AMP_ONLY_KEYS:
        wrapper.pop(key, None)
    return True


def configure_amp(cfg: Config, enable: bool) -> Config:
    """Apply ``--amp`` the way mmpretrain does, but only where it works.

    With CUDA, ``--amp`` switches ``optim_wrapper`` to ``AmpOptimWrapper``
    (``loss_scale='dynamic'`` unless set). Without CUDA, mmengine's
    ``AmpOptimWrapper`` refuses to build; on a CPU with AMX tiles
    (:func:`mmssl.engine.optimizers.cpu_has_amx_bf16`) ``--amp`` switches to
    ``mmssl.CPUAmpOptimWrapper`` (bf16 autocast, several times faster
    products than fp32 there; ``loss_scale`` and ``use_fsdp`` dropped, the
    dtype bf16), on other CPUs, which have no bf16 matrix units,
    it only logs a warning and training stays in fp32. Without ``--amp``, a
    config that itself names ``AmpOptimWrapper`` is switched to
    ``OptimWrapper`` (fp32) on a machine without CUDA, with a warning, so a
    config trains to the same numbers on every CPU.
    """
    wrapper = cfg.get('optim_wrapper')
    cuda = torch.cuda.is_available()
    if enable:
        if wrapper is None:
            raise ToolError('--amp needs an optim_wrapper in the config')
        if cuda:
            if not is_amp_wrapper(wrapper):
                wrapper['type'] = 'AmpOptimWrapper'
            wrapper.setdefault('loss_scale', 'dynamic')
            return cfg
        if cpu_has_amx_bf16():
            to_fp32_wrapper(wrapper)
            wrapper['type'] = 'mmssl.CPUAmpOptimWrapper'
            wrapper['dtype'] = 'bfloat16'
            print_log(
                '--amp without CUDA: this CPU has AMX bf16 units, so the '
                'forward and backward run in bf16 autocast on the CPU '
                '(mmssl.CPUAmpOptimWrapper; parameters and optimizer state '
                'stay fp32, no loss scaling)',
                logger='current',
                level=logging.INFO)
            return cfg
        print_log(
            '--amp is ignored: CUDA is not available and this CPU has no '
            'AMX bf16 units (bf16 autocast would not be faster), so '
            'training stays in fp32',
            logger='current',
            level=logging.WARNING)
    if not cuda and wrapper is not None and to_fp32_wrapper(wrapper):
        print_log(
            'The config uses AmpOptimWrapper but CUDA is not available: '
            'using OptimWrapper (fp32) instead (with --amp, a CPU with AMX '
            'bf16 units trains in bf16 autocast)',
            logger='current',
            level=logging.WARNING)
    return cfg


def configure_test_amp(cfg: Config, enable: bool) -> Config:
    """``--amp`` for testing: ``test_cfg.fp16=True`` where it is faster.

    mmengine's ``TestLoop`` runs ``test_step`` in its ``autocast`` when
    ``fp16`` is set: fp16 with CUDA, bf16 on the CPU. So the flag is set
    with CUDA and on a CPU with AMX tiles
    (:func:`mmssl.engine.optimizers.cpu_has_amx_bf16`, the same rule as
    :func:`configure_amp`); on other CPUs, which have no bf16 matrix units,
    it only logs a warning and testing stays in fp32.
    """
    if not enable:
        return cfg
    cuda = torch.cuda.is_available()
    if cuda or cpu_has_amx_bf16():
        cfg.setdefault('test_cfg', ConfigDict())
        if cfg.test_cfg is None:
            cfg.test_cfg = ConfigDict()
        cfg.test_cfg.fp16 = True
        if not cuda:
            print_log(
                '--amp without CUDA: this CPU has AMX bf16 units, so the '
                'test forward runs in bf16 autocast on the CPU',
                logger='current',
                level=logging.INFO)
    else:
        print_log(
            '--amp is ignored: CUDA is not available and this CPU has no '
            'AMX bf16 units (bf16 autocast would not be faster), so '
            'testing stays in fp32',
            logger='current',
            level=logging.WARNING)
    return cfg


@contextlib.contextmanager
def _no_cuda_set_device() -> Iterator[None]:
    original = torch.cuda.set_device
    torch.cuda.set_device = lambda *args, **kwargs: None
    try:
        yield
    finally:
        torch.cuda.set_device = original


def configure_distributed(cfg: Config, launcher: str) -> Config:
    """Make a distributed launch work on a machine without CUDA.

    mmengine takes the backend from ``env_cfg.dist_cfg.backend`` (default
    ``'nccl'``), calls ``torch.cuda.set_device`` while initialising, and
    wraps the model in DDP with ``device_ids=[LOCAL_RANK]``; all three fail
    without CUDA. When ``launcher != 'none'`` and CUDA is not available this
    function switches the backend to ``'gloo'`` (logging it), initialises
    the process group itself through mmengine's ``init_dist`` (so the
    Runner's own call is skipped), and sets
    ``model_wrapper_cfg.device_ids=None`` so DDP runs on CPU. With CUDA the
    config is left as it is.

    Raises:
        ToolError: ``--launcher pytorch`` outside torchrun (no ``RANK``).
    """
    if launcher == 'none':
        return cfg
    if launcher == 'pytorch' and 'RANK' not in os.environ:
        raise ToolError(
            '--launcher pytorch needs the environment variables that '
            'torchrun sets (RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR); '
            'start the job with tools/dist_train.sh or tools/dist_test.sh')
    if torch.cuda.is_available():
        return cfg
    env_cfg = cfg.get('env_cfg')
    if env_cfg is None:
        cfg.env_cfg = ConfigDict(dist_cfg=dict(backend='nccl'))
        env_cfg = cfg.env_cfg
    dist_cfg = env_cfg.get('dist_cfg')
    if dist_cfg is None:
        env_cfg.dist_cfg = ConfigDict(backend='nccl')
        dist_cfg = env_cfg.dist_cfg
    backend = dist_cfg.get('backend', 'nccl')
    if backend == 'nccl':
        dist_cfg.backend = 'gloo'
        print_log(
            "CUDA is not available: using the 'gloo' distributed backend "
            "instead of 'nccl' from env_cfg.dist_cfg",
            logger='current',
            level=logging.WARNING)

    wrapper_cfg = cfg.get('model_wrapper_cfg')
    if wrapper_cfg is None:
        cfg.model_wrapper_cfg = ConfigDict(
            type='MMDistributedDataParallel',
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False),
            device_ids=None)
    else:
        wrapper_cfg.setdefault('device_ids', None)

    from mmengine.dist import init_dist, is_distributed
    if not is_distributed():
        with _no_cuda_set_device():
            init_dist(launcher, **dict(dist_cfg))
    return cfg


def set_default_dataloader_cfg(
        cfg: Config,
        fields: Sequence[str],
        pin_memory: Optional[bool] = None,
        persistent_workers: Optional[bool] = None) -> Config:
    """mmpretrain's dataloader defaults, adjusted to the machine.

    ``pin_memory`` defaults to whether CUDA is available (pinning needs an
    accelerator), ``persistent_workers`` to ``num_workers > 0``;
    ``collate_fn`` to ``default_collate``. Values written in the config win;
    ``False`` passed here (from ``--no-pin-memory``/
    ``--no-persistent-workers``) wins over the config, and
    ``persistent_workers`` is dropped whenever ``num_workers`` is 0 (torch
    refuses the combination). Call it after ``--cfg-options`` are merged.
    """
    for field in fields:
        loader = cfg.get(field)
        if loader is None:
            continue
        merged = ConfigDict(
            pin_memory=torch.cuda.is_available(),
            persistent_workers=True,
            collate_fn=dict(type='default_collate'))
        merged.update(loader)
        if pin_memory is False:
            merged.pin_memory = False
        if persistent_workers is False or merged.get('num_workers', 0) == 0:
            merged.pop('persistent_workers', None)
        cfg[field] = merged
    return cfg


def build_runner(cfg: Config):
    """``Runner.from_cfg``; ``RUNNERS.build`` when ``runner_type`` is set.

    A config's ``compile`` compiles the model's forward
    (:func:`mmssl.engine.compile.compile_forward_in_runner`), which dynamo
    can trace, instead of mmengine's ``train_step``, which it cannot.
    """
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner

    from .compile import compile_forward_in_runner
    if 'runner_type' not in cfg:
        runner = Runner.from_cfg(cfg)
    else:
        runner = RUNNERS.build(cfg)
    compile_forward_in_runner(runner)
    return runner
