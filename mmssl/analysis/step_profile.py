# Copyright (c) mmssl contributors. All rights reserved.
"""Where a training step's time goes: operators and kernel families.

:func:`profile_train_step` runs a config's training step (model, optimizer,
synthetic batch, as ``benchmark_train.py`` times it) under
``torch.profiler`` and reports the operators by *self* time (CPU time on
CPU, device time on CUDA), plus the share of each family (matrix products,
attention, normalisation, activations, optimizer, copies / casts, other).
Self times add up to the step, so the shares add up to 100 %.
"""
import re
import time
from collections import defaultdict
from typing import Dict, List, Optional, Union

import torch
from mmengine.config import Config
from mmengine.runner import set_random_seed

from mmssl.models.utils.drop_path import python_drop_path_rates
from mmssl.utils.validation import check_int
from .benchmark import (_as_config, _num_threads, _run_steps,
                        build_train_model, make_synthetic_batch)
from .step_options import maybe_compile
from .synthetic_batch import synthetic_batch_errors

__all__ = [
    'FAMILIES', 'PHASES', 'op_family', 'profile_train_step', 'time_phases'
]

#: (family, pattern on the lower-cased operator / kernel name), first match
#: wins; the order matters (``addmm`` before ``add``).
FAMILIES = (
    ('attention', r'attention|sdpa|flash|softmax|fmha|efficient_attn'),
    ('optimizer', r'adam|_foreach|multi_tensor|fused_'),
    ('matmul',
     r'\bmm\b|addmm|bmm|matmul|linear|gemm|cutlass|sm\d+_xmma|ampere_|'
     r'hopper_|nvjet|conv'),
    ('norm', r'layer_norm|layernorm|batch_norm|instance_norm|group_norm'),
    ('activation', r'gelu|relu|silu|tanh|sigmoid'),
    ('copy / cast', r'copy|_to_copy|cat\b|index|gather|scatter|clone|'
     r'contiguous|fill|zero|memcpy|memset|cast|transpose|permute|reshape'),
    ('elementwise', r'\badd|\bmul|\bsub|\bdiv|pow|sqrt|exp|neg|sum|mean|'
     r'elementwise|vectorized|reduce'),
)


def op_family(name: str) -> str:
    """The family of an operator or kernel name (``'other'`` if none)."""
    low = name.lower()
    for family, pattern in FAMILIES:
        if re.search(pattern, low):
            return family
    return 'other'


def _cfg_name(cfg: Config) -> str:
    """The config's file name for errors (``'config'`` if built in code)."""
    return getattr(cfg, 'filename', None) or 'config'


def _is_kernel(event) -> bool:
    """Whether a profiler average is a device kernel (not a CPU operator)."""
    kind = getattr(event, 'device_type', None)
    return kind is not None and 'CPU' not in str(kind)


def _counted_events(averages, attr: str, on_cuda: bool) -> list:
    """The profiler averages whose self time ``attr`` makes up the step.

    Events without time and ``ProfilerStep#N`` spans are left out. On CUDA
    only the kernels count (an operator's self device time is its kernels'
    time again); on the CPU every operator's self time counts once.
    """
    return [
        e for e in averages
        if getattr(e, attr, 0) > 0 and not e.key.startswith('ProfilerStep') and
        (not on_cuda or _is_kernel(e))
    ]


def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def time_phases(model, optim_wrapper, data: dict, steps: int,
                device: torch.device) -> Dict[str, float]:
    """Milliseconds per step of each phase of mmengine's ``train_step``.

    The step is the one ``BaseModel.train_step`` runs, split with device
    synchronisations: ``preprocess`` (data preprocessor), ``forward`` (the
    loss forward under the wrapper's autocast), ``backward`` and
    ``optimizer`` (``step`` + ``zero_grad``).
    """
    totals = defaultdict(float)
    for _ in range(steps):
        marks = [time.perf_counter()]
        batch = model.data_preprocessor(data, True)
        _sync(device)
        marks.append(time.perf_counter())
        with optim_wrapper.optim_context(model):
            losses = model._run_forward(batch, mode='loss')
        loss, _ = model.parse_losses(losses)
        _sync(device)
        marks.append(time.perf_counter())
        optim_wrapper.backward(loss)
        _sync(device)
        marks.append(time.perf_counter())
        optim_wrapper.step()
        optim_wrapper.zero_grad()
        _sync(device)
        marks.append(time.perf_counter())
        for name, a, b in zip(PHASES, marks, marks[1:]):
            totals[name] += (b - a) * 1000.
    return {name: totals[name] / steps for name in PHASES}


PHASES = ('preprocess', 'forward', 'backward', 'optimizer')


def profile_train_step(cfg: Union[str, Config, dict],
                       batch_size: Optional[int] = None,
                       steps: int = 3,
                       warmup: int = 3,
                       device: Union[str, torch.device] = 'cpu',
                       threads: Optional[int] = None,
                       top: int = 15,
                       seed: int = 0) -> Dict[str, object]:
    """Profile ``steps`` training steps of a config.

    Args:
        cfg (str | Config | dict): A training config.
        batch_size (int, optional): Samples per step; the loader's if None.
        steps (int): Profiled steps. Defaults to 3.
        warmup (int): Unprofiled steps first (and compilation, when the
            config sets ``compile``). Defaults to 3.
        device (str | torch.device): 'cpu' or 'cuda[:i]'.
        threads (int, optional): torch threads; the current setting if None.
        top (int): Operators listed. Defaults to 15.
        seed (int): Seed of the weights and the batch.

    Returns:
        dict: ``ops``, a list of the ``top`` operators (``name``,
        ``family``, ``self_ms`` per step, ``pct``, ``calls`` per step);
        ``families``, {family: pct}; ``step_ms``, the summed self time per
        step; ``phase_ms``, {phase: ms per step} of :func:`time_phases`
        (timed without the profiler); ``time_kind`` ('cpu' or 'device');
        ``batch_size``, ``compiled``.
    """
    check_int(steps, 'steps', 'profile_train_step')
    check_int(warmup, 'warmup', 'profile_train_step', minimum=0)
    check_int(top, 'top', 'profile_train_step')
    cfg = _as_config(cfg)
    device = torch.device(device)
    on_cuda = device.type == 'cuda'
    with _num_threads(threads):
        set_random_seed(seed)
        model, optim_wrapper, _ = build_train_model(cfg, device)
        bs = batch_size or cfg.train_dataloader.batch_size
        with synthetic_batch_errors(_cfg_name(cfg)):
            data = model.data_preprocessor.cast_data(
                make_synthetic_batch(cfg, bs, seed))
            _run_steps(model, optim_wrapper, data, 1)  # fails here, not later
        compiled = maybe_compile(model, cfg)
        _run_steps(model, optim_wrapper, data, warmup)
        phase_ms = time_phases(model, optim_wrapper, data, steps, device)
        activities = [torch.profiler.ProfilerActivity.CPU]
        if on_cuda:
            activities.append(torch.profiler.ProfilerActivity.CUDA)
            torch.cuda.synchronize(device)
        with torch.profiler.profile(activities=activities) as prof:
            _run_steps(model, optim_wrapper, data, steps)
            if on_cuda:
                torch.cuda.synchronize(device)
    averages = prof.key_averages()
    attr = 'self_cpu_time_total'
    if on_cuda:  # torch < 2.4 names the device time after CUDA
        attr = 'self_device_time_total' if all(
            hasattr(e, 'self_device_time_total')
            for e in averages) else 'self_cuda_time_total'
    events = _counted_events(averages, attr, on_cuda)
    total_us = sum(getattr(e, attr) for e in events)
    families = defaultdict(float)
    rows = []
    for e in sorted(events, key=lambda e: -getattr(e, attr)):
        t = getattr(e, attr)
        fam = op_family(e.key)
        families[fam] += 100. * t / total_us
        rows.append(
            dict(
                name=e.key,
                family=fam,
                self_ms=t / 1000. / steps,
                pct=100. * t / total_us,
                calls=e.count / steps))
    return dict(
        ops=rows[:top],
        families=dict(sorted(families.items(), key=lambda kv: -kv[1])),
        step_ms=total_us / 1000. / steps,
        phase_ms=phase_ms,
        time_kind='device' if on_cuda else 'cpu',
        batch_size=bs,
        compiled=compiled)


def _guard_failure_lines() -> List[str]:
    """The guards that failed since the last ``torch._dynamo.reset()``,
    one line each (dynamo's own record; empty if this torch lacks it)."""
    import torch._dynamo.utils as dynamo_utils
    lines = []
    for failures in getattr(dynamo_utils, 'guard_failures', {}).values():
        for failure in failures:
            # '0/1: self.calls == 1   # self.calls += 1  # file:line ...'
            line = str(failure).strip().splitlines()[0]
            line = re.sub(r'^\d+/\d+:\s*', '', line).split('#')[0].strip()
            line = re.sub(r'== -?\d+$', '== <int>', line)
            if line and line not in lines:
                lines.append(line)
    return lines


def explain_graph_breaks(cfg: Union[str, Config, dict],
                         batch_size: int = 2,
                         seed: int = 0,
                         steps: int = 3) -> Dict[str, object]:
    """How ``torch.compile`` would split a config's training forward, and
    whether later steps reuse the graphs.

    Traces ``model(**data, mode='loss')`` on a synthetic batch with
    ``torch._dynamo.explain`` (no compilation, CPU), then runs the forward
    ``steps`` times through ``torch.compile`` with a backend that only
    counts the graphs it is handed (no code generated), each step on a
    fresh synthetic batch. A graph compiled after the first step is a
    recompilation: a guard failed, e.g. on a Python number that the
    forward changes (dynamo specialises on it). After
    ``torch._dynamo.config.recompile_limit`` recompilations of a frame
    the rest of every step runs eagerly, so a compiled step that
    recompiles is not a compiled step.

    Returns:
        dict: ``graphs`` and ``breaks`` (counts), ``reasons``: one entry
        (``reason``, ``where``) per distinct break, ``recompiles``: graphs
        compiled after the first of ``steps`` steps, ``recompile_reasons``:
        the failed guards.
    """
    import torch._dynamo as dynamo
    check_int(batch_size, 'batch_size', 'explain_graph_breaks')
    check_int(steps, 'steps', 'explain_graph_breaks', minimum=2)
    cfg = _as_config(cfg)
    set_random_seed(seed)
    model, _, _ = build_train_model(cfg, 'cpu')
    # as compile=True prepares it (mmssl.engine.compile.compile_forward)
    python_drop_path_rates(model)
    with synthetic_batch_errors(_cfg_name(cfg)):
        data = model.data_preprocessor(
            make_synthetic_batch(cfg, batch_size, seed), True)
        model(**data, mode='loss')  # eagerly first: a missing field fails
    dynamo.reset()
    explained = dynamo.explain(model.forward)(**data, mode='loss')
    dynamo.reset()
    reasons = []
    for b in explained.break_reasons:
        entry = dict(
            reason=str(b.reason).strip().splitlines()[0],
            where=str(b.user_stack[-1]) if b.user_stack else '')
        if entry not in reasons:
            reasons.append(entry)

    graphs_per_step = []

    def counting_backend(gm, example_inputs):
        graphs_per_step[-1] += 1
        return gm.forward

    compiled = torch.compile(model.forward, backend=counting_backend)
    try:
        for i in range(steps):
            graphs_per_step.append(0)
            batch = model.data_preprocessor(
                make_synthetic_batch(cfg, batch_size, seed + i), True)
            compiled(**batch, mode='loss')
        recompile_reasons = _guard_failure_lines()
    finally:
        dynamo.reset()
    return dict(
        graphs=explained.graph_count,
        breaks=explained.graph_break_count,
        reasons=reasons,
        recompiles=sum(graphs_per_step[1:]),
        recompile_reasons=recompile_reasons)


def format_profile(result: Dict[str, object]) -> List[str]:
    """Lines of a profile: families, then the top operators."""
    lines = [
        f"self {result['time_kind']} time per step "
        f"{result['step_ms']:.1f} ms (batch {result['batch_size']}"
        f"{', compiled' if result['compiled'] else ''})",
        'families: ' + ', '.join(f'{k} {v:.1f} %'
                                 for k, v in result['families'].items()),
        'phases (ms/step, timed apart): ' +
        ', '.join(f'{k} {v:.1f}' for k, v in result['phase_ms'].items())
    ]
    width = max([len(r['name'][:70]) for r in result['ops']] + [8])
    lines.append(f"{'operator':<{width}}  {'family':<12} {'ms/step':>8} "
                 f"{'%':>6} {'calls':>6}")
    for r in result['ops']:
        lines.append(f"{r['name'][:70]:<{width}}  {r['family']:<12} "
                     f"{r['self_ms']:8.2f} {r['pct']:6.1f} {r['calls']:6.0f}")
    return lines


__all__ += ['format_profile', 'explain_graph_breaks']
