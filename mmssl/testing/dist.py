# Copyright (c) mmssl contributors. All rights reserved.
"""Check that a distributed computation equals the single-process one.

:func:`run_single_and_distributed` runs a step function once in this process
on the global batch and once in ``world_size`` gloo processes on CPU, each on
its contiguous share of the batch; the ranks' results are averaged (the DDP
convention for gradients). :func:`assert_matches_single_process` compares the
two to a tolerance. The step function must be importable (defined at module
level) and take the batch tensors as positional arguments; it returns a dict
of tensors, e.g. the loss and the parameter gradients after ``backward()``.

:func:`train_runner_distributed` trains a runner config in ``world_size``
gloo processes on CPU (DDP, as ``--launcher pytorch`` would) and returns the
model's state dict, e.g. for the multi-process exact-resume check of
:mod:`mmssl.testing.resume`.
"""
import copy
import os
import os.path as osp
import socket
import tempfile
import time
from datetime import timedelta
from typing import Any, Callable, Dict, Sequence, Tuple

import torch
import torch.distributed as torch_dist
import torch.multiprocessing as mp

Result = Dict[str, torch.Tensor]


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def split_batch(batch: Sequence[torch.Tensor], world_size: int,
                rank: int) -> Tuple[torch.Tensor, ...]:
    """Rank ``rank``'s contiguous share of every (B, ...) tensor."""
    out = []
    for t in batch:
        if t.shape[0] % world_size:
            raise ValueError(f'batch size {t.shape[0]} is not divisible by '
                             f'world_size={world_size}')
        out.append(t.chunk(world_size)[rank].clone())
    return tuple(out)


def _worker(rank: int, fn: Callable, batch, world_size: int, port: int,
            out_dir: str, timeout_s: float) -> None:
    os.environ['MASTER_ADDR'] = '127.0.0.1'
    os.environ['MASTER_PORT'] = str(port)
    torch.set_num_threads(1)
    torch_dist.init_process_group(
        'gloo',
        rank=rank,
        world_size=world_size,
        timeout=timedelta(seconds=timeout_s))
    try:
        result = fn(*split_batch(batch, world_size, rank))
        reduced = {}
        for key, value in result.items():
            value = value.detach().clone().double()
            torch_dist.all_reduce(value, op=torch_dist.ReduceOp.SUM)
            reduced[key] = value / world_size
        if rank == 0:
            torch.save(reduced, osp.join(out_dir, 'result.pth'))
    finally:
        torch_dist.destroy_process_group()


def _autograd_probe() -> None:
    x = torch.ones(2, requires_grad=True)
    (x * 2).sum().backward()


def fork_runs_autograd() -> bool:
    """Whether a child forked from this process can run a backward pass.

    Once this process has run a ``torch.compile``'d backward, torch's
    autograd engine has started its worker threads and refuses any backward
    in a forked child ("Unable to handle autograd's threading in
    combination with fork-based multiprocessing"). A forked probe tells.
    """
    proc = mp.get_context('fork').Process(target=_autograd_probe)
    proc.start()
    proc.join()
    return proc.exitcode == 0


def _spawn(worker: Callable, args: tuple, world_size: int,
           timeout_s: float) -> None:
    """Run ``worker(rank, *args)`` in ``world_size`` processes; kill them
    and raise ``TimeoutError`` after ``timeout_s`` seconds.

    The processes are forked (they see everything this process imported
    or registered) unless a forked child could not run autograd here (see
    :func:`fork_runs_autograd`); then they are spawned, and ``worker`` and
    ``args`` must be importable / picklable from a fresh interpreter.
    """
    start_method = 'fork' if fork_runs_autograd() else 'spawn'
    ctx = mp.start_processes(
        worker,
        args=args,
        nprocs=world_size,
        join=False,
        start_method=start_method)
    deadline = time.monotonic() + timeout_s
    while not ctx.join(timeout=1):
        if time.monotonic() > deadline:
            for proc in ctx.processes:
                if proc.is_alive():
                    proc.kill()
            raise TimeoutError(
                f'{world_size}-process run did not end in {timeout_s} s')


def run_distributed(fn: Callable[..., Result],
                    batch: Sequence[torch.Tensor],
                    world_size: int = 2,
                    timeout_s: float = 120.) -> Result:
    """Run ``fn`` on ``world_size`` gloo processes, each with its share of
    ``batch``, and return the rank-averaged results (float64)."""
    with tempfile.TemporaryDirectory() as out_dir:
        _spawn(_worker,
               (fn, tuple(batch), world_size, free_port(), out_dir, timeout_s),
               world_size, timeout_s)
        return torch.load(osp.join(out_dir, 'result.pth'), weights_only=True)


def _runner_worker(rank: int, cfg: Any, world_size: int, port: int,
                   out_dir: str, timeout_s: float) -> None:
    from mmengine.config import Config
    from mmengine.model import is_model_wrapper
    from mmengine.runner import Runner

    os.environ.update(
        MASTER_ADDR='127.0.0.1',
        MASTER_PORT=str(port),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world_size),
        CUDA_VISIBLE_DEVICES='')
    torch.set_num_threads(1)
    # the process group is set up here, so the runner does not call
    # init_dist (which needs CUDA for torch.cuda.set_device)
    torch_dist.init_process_group(
        'gloo',
        rank=rank,
        world_size=world_size,
        timeout=timedelta(seconds=timeout_s))
    try:
        cfg = copy.deepcopy(cfg) if isinstance(cfg, Config) else Config(
            copy.deepcopy(cfg))
        cfg.launcher = 'pytorch'
        wrapper = cfg.get('model_wrapper_cfg') or dict(
            type='MMDistributedDataParallel',
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
        wrapper['device_ids'] = None  # DDP on CPU
        cfg.model_wrapper_cfg = wrapper
        runner = Runner.from_cfg(cfg)
        runner.train()
        model = runner.model
        if is_model_wrapper(model):
            model = model.module
        if rank == 0:
            torch.save(
                {
                    k: v.detach().cpu().clone()
                    for k, v in model.state_dict().items()
                }, osp.join(out_dir, 'state_dict.pth'))
    finally:
        torch_dist.destroy_process_group()


def train_runner_distributed(cfg: Any,
                             world_size: int = 2,
                             timeout_s: float = 300.) -> Result:
    """Train the runner config ``cfg`` (dict or Config) in ``world_size``
    gloo processes on CPU, the model wrapped in ``MMDistributedDataParallel``
    as with ``--launcher pytorch``; return rank 0's model state dict.

    The processes are forked, so ``cfg`` may refer to anything this
    process has imported or registered; after a compiled backward in this
    process they are spawned instead (see :func:`_spawn`), and ``cfg`` may
    name only what importing mmssl registers.
    """
    with tempfile.TemporaryDirectory() as out_dir:
        _spawn(_runner_worker,
               (cfg, world_size, free_port(), out_dir, timeout_s), world_size,
               timeout_s)
        return torch.load(
            osp.join(out_dir, 'state_dict.pth'), weights_only=True)


def run_single_and_distributed(
        fn: Callable[..., Result],
        batch: Sequence[torch.Tensor],
        world_size: int = 2,
        timeout_s: float = 120.) -> Tuple[Result, Result]:
    """``fn`` on the whole batch here, and on ``world_size`` processes.

    Returns:
        tuple[dict, dict]: single-process results and rank-averaged
        distributed results (both float64).
    """
    single = {
        k: v.detach().double()
        for k, v in fn(*[t.clone() for t in batch]).items()
    }
    return single, run_distributed(fn, batch, world_size, timeout_s)


def max_differences(single: Result, multi: Result) -> Dict[str, float]:
    """Largest absolute difference per key."""
    if single.keys() != multi.keys():
        raise KeyError(f'keys differ: {sorted(single)} vs {sorted(multi)}')
    return {k: (single[k] - multi[k]).abs().max().item() for k in single}


def assert_matches_single_process(fn: Callable[..., Result],
                                  batch: Sequence[torch.Tensor],
                                  world_size: int = 2,
                                  atol: float = 1e-5,
                                  timeout_s: float = 120.) -> None:
    """Assert the rank-averaged ``world_size``-process results of ``fn``
    equal the single-process ones to ``atol``."""
    diffs = max_differences(
        *run_single_and_distributed(fn, batch, world_size, timeout_s))
    bad = {k: d for k, d in diffs.items() if not d <= atol}
    if bad:
        raise AssertionError(
            f'{world_size}-process results differ from the single-process '
            f'ones by more than {atol}: {bad}')
