# Copyright (c) mmssl contributors. All rights reserved.
"""Latency and memory of SubTuning multi-task inference.

For ``T`` tasks finetuned from one trunk (:func:`make_subtuning_tasks`:
``T`` SubTuningClassifiers built from one config, sharing a random or
pretrained backbone, each with its own perturbed tuned blocks and head),
three arms run the same ``(B, 3, H, W)`` batch of preprocessed images under
``torch.inference_mode()``:

* ``separate``: the ``T`` task models one after the other;
* ``multitask``: :class:`~mmssl.models.MultiTaskSubTuning` (the frozen
  prefix once, then one branch per task);
* ``multitask_batched``: the same with ``batch_branches=True`` (branches
  that run the same shared frozen unit are folded into one ``(k * B,
  ...)`` batch).

All cases (block placement x task count) and arms are timed in one
interleaved run: every arm of every case is run ``warmup`` times, then
``repeat`` rounds each time every arm of every case in turn (A, B, C, A, B,
C, ...) for ``iters`` forwards; ``latency_ms`` is the median over the
rounds of the mean time of a forward, so background load falls on all arms
and task counts alike. ``speedup`` is the ``separate`` latency of the case
divided by the arm's.

Memory, per arm:

* ``param_mib``: the weights the arm needs (``state_dict`` tensors:
  parameters and persistent buffers). ``separate``: the ``T`` full models.
  Multi-task arms: the trunk weights that some task keeps frozen plus every
  branch's tuned blocks, neck and head
  (:meth:`MultiTaskSubTuning.merged_state_dict`, what a merged checkpoint
  stores); ``param_mib_held`` is what the module holds (its trunk also keeps
  the blocks every task tunes, which are never run).
* ``forward_mem_mib``: what one forward adds on top of what is allocated
  before it (activations, outputs, temporaries), measured on an extra,
  untimed forward after the warm-up with
  :class:`~mmssl.analysis.step_memory.StepMemory`: on CUDA
  ``torch.cuda.max_memory_allocated`` minus ``memory_allocated`` before; on
  CPU the growth of the process's resident set size (peak ``VmHWM``, else
  ``VmRSS`` sampled every millisecond, minus ``VmRSS`` before, after
  ``malloc_trim``). The CPU figure includes allocator overhead and reuse
  and is an approximation, coarse for small models.
* ``peak_mem_mib``: ``param_mib + forward_mem_mib``.

``max_abs_diff`` is the largest absolute logit difference of the arm's
outputs to the separate models' (0 for ``separate``).
"""
import copy
import random
import statistics
import time
from typing import Callable, Dict, List, Optional, Sequence, Union

import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from mmssl.utils.validation import check_int
from .benchmark import _num_threads, _quiet_logs
from .step_memory import StepMemory, sync_device

__all__ = [
    'ARMS', 'benchmark_multitask', 'format_markdown', 'input_size',
    'make_subtuning_tasks', 'plot_latency', 'task_block_sets'
]

MIB = 1024.**2

#: the arms of :func:`benchmark_multitask`, in the order they run
ARMS = ('separate', 'multitask', 'multitask_batched')

_SIZE_STEPS = {
    'RandomResizedCrop': 'scale',
    'CenterCrop': 'crop_size',
    'RandomCrop': 'crop_size',
    'Resize': 'scale',
    'ResizeEdge': 'scale',
}


def _as_config(cfg: Union[str, Config, dict]) -> Config:
    if isinstance(cfg, Config):
        return cfg
    if isinstance(cfg, dict):
        return Config(cfg)
    from mmssl.engine.config_options import load_config
    return load_config(cfg)


def _side(value) -> int:
    return int(value[0] if isinstance(value, (list, tuple)) else value)


def input_size(cfg: Config) -> int:
    """The image side the config's model sees.

    ``model.backbone.img_size`` when set; else the size of the first
    cropping or resizing step (``RandomResizedCrop``, ``CenterCrop``,
    ``Resize`` ...) of the train / val / test pipelines; else 224.
    """
    size = cfg.model.get('backbone', {}).get('img_size')
    if size is not None:
        return _side(size)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        dataset = (cfg.get(loader) or {}).get('dataset') or {}
        for step in dataset.get('pipeline') or []:
            key = _SIZE_STEPS.get(str(step.get('type', '')).split('.')[-1])
            if key and step.get(key) is not None:
                return _side(step[key])
    return 224


def task_block_sets(backbone: torch.nn.Module,
                    spec: str,
                    num_tasks: int,
                    seed: int = 0) -> List[List[str]]:
    """The tuned blocks of each task for a placement ``spec``.

    Args:
        backbone (nn.Module): The backbone the names refer to.
        spec (str): ``'layer4.1'`` or ``'layer2.0,layer4.0'``: the same
            blocks for every task; ``'random'`` or ``'random:K'``: each
            task its own ``K`` (default 1) blocks drawn from
            :func:`~mmssl.models.utils.selectable_blocks` with ``seed``.
        num_tasks (int): Number of tasks.
        seed (int): Seed of the random draw.

    Returns:
        list[list[str]]: one block list per task.
    """
    from mmssl.models.utils import resolve_blocks, selectable_blocks
    if spec == 'random' or spec.startswith('random:'):
        count = int(spec.split(':', 1)[1]) if ':' in spec else 1
        candidates = selectable_blocks(backbone)
        if not 1 <= count <= len(candidates):
            raise ValueError(f'blocks {spec!r}: K must be in 1..'
                             f'{len(candidates)}')
        rng = random.Random(seed)
        return [
            sorted(rng.sample(candidates, count), key=candidates.index)
            for _ in range(num_tasks)
        ]
    blocks = resolve_blocks(backbone, [b for b in spec.split(',') if b],
                            f'blocks {spec!r}')
    return [list(blocks) for _ in range(num_tasks)]


def _perturb(tensor: torch.Tensor, gen: torch.Generator, scale: float,
             name: str) -> None:
    if not tensor.is_floating_point():
        return
    noise = torch.randn(tensor.shape, generator=gen)
    if name.endswith('running_var'):
        tensor.mul_(torch.exp(scale * noise))
    else:
        tensor.add_(scale * (tensor.std() if tensor.numel() > 1 else 1.) *
                    noise)


def make_subtuning_tasks(cfg: Union[str, Config, dict],
                         task_blocks: Sequence[Sequence[str]],
                         seed: int = 0,
                         noise: float = 0.1,
                         pretrained: bool = False) -> list:
    """SubTuning task models that share one trunk, as if finetuned.

    A base model is built from ``cfg.model`` (a SubTuningClassifier) and
    initialised (``init_weights()``; ``Pretrained`` ``init_cfg`` removed
    unless ``pretrained``); every task model is built from the same config
    with its ``trainable_blocks``, gets the base backbone's weights, and
    its tuned blocks' weights and BatchNorm statistics are perturbed
    (``w += noise * std(w) * N(0, 1)``, ``running_var *= exp(noise *
    N(0, 1))``) and its neck and head re-initialised, with a seed per task.
    A constant tensor (a fresh BatchNorm's weight, bias and running mean in
    a random trunk) has no spread to scale the noise by and stays as it is.

    Args:
        cfg (str | Config | dict): A config whose ``model`` is a
            SubTuningClassifier.
        task_blocks (list[list[str]]): The tuned blocks of each task.
        seed (int): Seed of the base model and of the perturbations.
        noise (float): Relative scale of the perturbations.
        pretrained (bool): Keep the config's ``Pretrained`` ``init_cfg``
            (the trunk is then the pretrained backbone). Defaults to False
            (a random trunk).

    Returns:
        list[SubTuningClassifier]: the task models, in eval mode.
    """
    from mmssl.converters import strip_pretrained
    from mmssl.converters.subtuning_multitask import _plain
    from mmssl.models import SubTuningClassifier
    from mmssl.registry import MODELS
    from mmssl.utils.config import default_scope_of
    cfg = _as_config(cfg)
    model_cfg = _plain(cfg.model)
    if model_cfg.get('data_preprocessor') is None and cfg.get(
            'data_preprocessor') is not None:
        model_cfg['data_preprocessor'] = _plain(cfg.data_preprocessor)
    if not pretrained:
        model_cfg = strip_pretrained(model_cfg)
    models = []
    with DefaultScope.overwrite_default_scope(
            default_scope_of(cfg)), _quiet_logs():
        cls = MODELS.get(model_cfg.get('type'))
        if not (isinstance(cls, type)
                and issubclass(cls, SubTuningClassifier)):
            raise ValueError(
                f"model.type={model_cfg.get('type')!r} is no "
                'SubTuningClassifier; the multi-task benchmark needs a '
                'SubTuningClassifier config')
        torch.manual_seed(seed)
        base = MODELS.build(dict(model_cfg, trainable_blocks=[]))
        base.init_weights()
        trunk = base.backbone.state_dict()
        for index, blocks in enumerate(task_blocks):
            torch.manual_seed(seed + 1 + index)
            model = MODELS.build(
                dict(copy.deepcopy(model_cfg), trainable_blocks=list(blocks)))
            model.init_weights()
            model.backbone.load_state_dict(trunk)
            gen = torch.Generator().manual_seed(seed + 1000 + index)
            with torch.no_grad():
                for name, value in model.backbone.state_dict().items():
                    if any(name == b or name.startswith(b + '.')
                           for b in model.trainable_blocks):
                        _perturb(value, gen, noise, name)
            models.append(model.eval())
    return models


def _build_backbone(cfg: Config) -> torch.nn.Module:
    """``cfg.model.backbone``, built (for its block names)."""
    from mmssl.converters import strip_pretrained
    from mmssl.converters.subtuning_multitask import _plain
    from mmssl.registry import MODELS
    from mmssl.utils.config import default_scope_of
    with DefaultScope.overwrite_default_scope(default_scope_of(cfg)):
        return MODELS.build(strip_pretrained(_plain(cfg.model.backbone)))


def _unique_bytes(tensors) -> int:
    seen, total = set(), 0
    for tensor in tensors:
        key = (tensor.data_ptr(), tensor.numel(), tensor.dtype)
        if key in seen:
            continue
        seen.add(key)
        total += tensor.numel() * tensor.element_size()
    return total


def _model_bytes(modules) -> int:
    """Bytes of the modules' weights (their ``state_dict`` tensors)."""
    tensors = []
    for module in modules:
        tensors += list(module.state_dict().values())
    return _unique_bytes(tensors)


def _max_diff(got: Dict[str, torch.Tensor], want: Dict[str,
                                                       torch.Tensor]) -> float:
    return max(float((got[k] - want[k]).abs().max()) for k in want)


def _time(fn: Callable, iters: int, device: torch.device) -> float:
    sync_device(device)
    start = time.perf_counter()
    for _ in range(iters):
        fn()
    sync_device(device)
    return (time.perf_counter() - start) / iters


def benchmark_multitask(config: Union[str, Config, dict],
                        task_counts: Sequence[int] = (1, 2, 4, 8),
                        blocks: Sequence[str] = ('layer4.1', ),
                        batch_size: int = 8,
                        img_size: Optional[int] = None,
                        iters: int = 5,
                        warmup: int = 2,
                        repeat: int = 5,
                        threads: Optional[int] = None,
                        device: Union[str, torch.device] = 'cpu',
                        seed: int = 0,
                        pretrained: bool = False,
                        arms: Sequence[str] = ARMS) -> List[dict]:
    """Time separate task models against multi-task inference.

    See the module docstring for what is measured. For each block
    placement, ``max(task_counts)`` tasks are built
    (:func:`make_subtuning_tasks`); a case of ``T`` tasks uses the first
    ``T`` of them (and its own :class:`MultiTaskSubTuning`). All cases and
    arms are timed in one interleaved run: each round times every arm of
    every case in turn, so that background load falls on all of them
    alike, also across task counts.

    Args:
        config (str | Config | dict): A config whose ``model`` is a
            SubTuningClassifier (its ``trainable_blocks`` are replaced).
        task_counts (Sequence[int]): Numbers of tasks ``T``. Defaults to
            (1, 2, 4, 8).
        blocks (Sequence[str]): Block placements (see
            :func:`task_block_sets`), e.g. ``('layer4.1', 'layer2.0',
            'random')``.
        batch_size (int): ``B``, images per forward. Defaults to 8.
        img_size (int, optional): H = W; :func:`input_size` if None.
        iters (int): Forwards per timed window. Defaults to 5.
        warmup (int): Untimed forwards of each arm first. Defaults to 2.
        repeat (int): Timed rounds (each arm once per round). Defaults
            to 5.
        threads (int, optional): torch CPU threads (restored afterwards).
        device (str | torch.device): Defaults to 'cpu'.
        seed (int): Seed of the tasks, the random placements and the batch.
        pretrained (bool): Keep the config's ``Pretrained`` ``init_cfg``.
        arms (Sequence[str]): A subset of :data:`ARMS`.

    Returns:
        list[dict]: one row per (placement, task count, arm), in that
        order, with ``blocks``, ``tasks``, ``arm``, ``task_blocks``,
        ``branch_points``, ``latency_ms``, ``latency_ms_runs``,
        ``speedup``, ``param_mib``, ``param_mib_held``,
        ``forward_mem_mib``, ``peak_mem_mib``, ``memory_method``,
        ``max_abs_diff``, ``batch_size``, ``img_size``, ``threads``,
        ``device``, ``iters``, ``warmup``, ``repeat``.
    """
    from mmssl.models import MultiTaskSubTuning
    cfg = _as_config(config)
    task_counts = [
        check_int(t, 'task_counts', 'benchmark_multitask') for t in task_counts
    ]
    arms = list(arms)
    for arm in arms:
        if arm not in ARMS:
            raise ValueError(f'arm {arm!r} is not one of {ARMS}')
    device = torch.device(device)
    size = int(img_size) if img_size else input_size(cfg)
    gen = torch.Generator().manual_seed(seed)
    inputs = torch.randn(batch_size, 3, size, size, generator=gen).to(device)
    with _num_threads(threads):
        num_threads = torch.get_num_threads()
        cases = []
        for spec in blocks:
            # T tasks are the first T of one draw for the most tasks
            sets = task_block_sets(
                _build_backbone(cfg), spec, max(task_counts), seed)
            models = make_subtuning_tasks(cfg, sets, seed=seed)
            for model in models:
                model.to(device)
            for count in task_counts:
                multi = MultiTaskSubTuning(models[:count]).to(device)
                cases.append(
                    _Case(spec, sets[:count], models[:count], multi, inputs,
                          arms))
        with torch.inference_mode():
            rows = _interleaved_run(cases, iters, warmup, repeat, device)
    for row in rows:
        row.update(
            batch_size=batch_size,
            img_size=size,
            threads=num_threads,
            device=str(device),
            iters=iters,
            warmup=warmup,
            repeat=repeat)
    return rows


class _Case:
    """The arms of one (placement, task count) case on one batch."""

    def __init__(self, spec, sets, models, multi, inputs, arms) -> None:
        self.spec, self.sets, self.models, self.multi = (spec, sets, models,
                                                         multi)
        self.inputs, self.arms = inputs, arms

    def run(self, arm: str) -> Dict[str, torch.Tensor]:
        """One forward of all tasks: task name -> ``(B, num_classes)``."""
        if arm == 'separate':
            return {
                name: model(self.inputs, mode='tensor')
                for name, model in zip(self.multi.task_names, self.models)
            }
        self.multi.batch_branches = arm == 'multitask_batched'
        return self.multi(self.inputs)


def _interleaved_run(cases: List[_Case], iters: int, warmup: int, repeat: int,
                     device: torch.device) -> List[dict]:
    """Check, warm up, measure memory, then time all cases' arms in
    rounds; see :func:`benchmark_multitask`."""
    diffs, memory, times = {}, {}, {}
    for index, case in enumerate(cases):
        reference = case.run('separate')
        for arm in case.arms:
            diffs[index, arm] = _max_diff(case.run(arm), reference)
            for _ in range(warmup):
                case.run(arm)
    method = ''
    for index, case in enumerate(cases):
        for arm in case.arms:
            meter = StepMemory(device)
            meter.start()
            out = case.run(arm)
            memory[index, arm] = meter.stop()
            method = meter.method
            del out
    for _ in range(repeat):
        for index, case in enumerate(cases):
            for arm in case.arms:
                times.setdefault(
                    (index, arm),
                    []).append(_time(lambda: case.run(arm), iters, device))
    rows = []
    for index, case in enumerate(cases):
        separate_bytes = _model_bytes(case.models)
        held = _model_bytes([case.multi])
        used = _unique_bytes(case.multi.merged_state_dict().values())
        case_rows = []
        for arm in case.arms:
            latency = statistics.median(times[index, arm]) * 1e3
            params = separate_bytes if arm == 'separate' else used
            case_rows.append(
                dict(
                    blocks=case.spec,
                    tasks=len(case.models),
                    arm=arm,
                    task_blocks=[list(s) for s in case.sets],
                    branch_points=list(case.multi.branch_points),
                    latency_ms=latency,
                    latency_ms_runs=[t * 1e3 for t in times[index, arm]],
                    speedup=None,
                    param_mib=params / MIB,
                    param_mib_held=(separate_bytes
                                    if arm == 'separate' else held) / MIB,
                    forward_mem_mib=memory[index, arm] / MIB,
                    peak_mem_mib=(params + memory[index, arm]) / MIB,
                    memory_method=method,
                    max_abs_diff=diffs[index, arm]))
        base = next((r for r in case_rows if r['arm'] == 'separate'), None)
        for row in case_rows:
            if base is not None:
                row['speedup'] = base['latency_ms'] / row['latency_ms']
        rows += case_rows
    return rows


#: (row key, column title, number format) of :func:`format_markdown`
COLUMNS = [('latency_ms', 'latency ms', '.2f'),
           ('speedup', 'separate / arm', '.2f'),
           ('forward_mem_mib', 'forward MiB', '.1f'),
           ('param_mib', 'weights MiB', '.2f'),
           ('peak_mem_mib', 'peak MiB', '.1f'),
           ('max_abs_diff', 'max diff', '.1e')]


def format_markdown(rows: Sequence[dict]) -> str:
    """The rows as a markdown table (blocks, T, arm, then :data:`COLUMNS`).
    """
    head = ['blocks', 'T', 'arm'] + [title for _, title, _ in COLUMNS]
    lines = [
        '| ' + ' | '.join(head) + ' |',
        '| ' + ' | '.join(['---'] * 3 + ['---:'] * len(COLUMNS)) + ' |'
    ]
    for row in rows:
        cells = [str(row['blocks']), str(row['tasks']), row['arm']]
        for key, _, fmt in COLUMNS:
            value = row.get(key)
            cells.append('-' if value is None else format(value, fmt))
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def plot_latency(rows: Sequence[dict], path: str) -> str:
    """Latency against the number of tasks, one line per (arm, blocks).

    Args:
        rows (list[dict]): From :func:`benchmark_multitask`.
        path (str): The image file (PNG, SVG ... by extension).

    Returns:
        str: ``path``.
    """
    from mmssl.visualization import plot_curves
    curves: Dict[str, tuple] = {}
    for row in rows:
        label = f"{row['arm']} ({row['blocks']})"
        xs, ys = curves.setdefault(label, ([], []))
        xs.append(row['tasks'])
        ys.append(row['latency_ms'])
    return plot_curves(
        curves, path, xlabel='number of tasks', ylabel='latency (ms)')
