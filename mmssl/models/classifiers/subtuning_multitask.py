# Copyright (c) mmssl contributors. All rights reserved.
"""Multi-task inference of SubTuning models that share a frozen trunk.

Every task is a :class:`SubTuningClassifier` finetuned from the same
pretrained backbone: its blocks outside ``trainable_blocks`` still hold the
pretrained weights and BatchNorm statistics. One forward runs the shared
frozen trunk once, up to each task's first tuned block, and branches there:
a task's branch runs its own copies of its tuned blocks, the shared frozen
blocks after them, and its own neck and head (spec section 2, "Multi-task
inference"). The extra cost of a task is everything from its first tuned
block on, so tasks tuned late in the network are cheap.

The backbone's forward is unrolled into units (mmpretrain ``ResNet``: the
stem, then one unit per residual block; ``VisionTransformer``: the
embeddings, then one unit per transformer block with the final norm and the
output formatting of the block where they apply), so the result equals the
separate models' forwards.

With ``batch_branches=True``, branches that run the same shared frozen
unit are folded into the batch dimension (``T`` branches of ``B`` images:
one ``(T * B, ...)`` batch) and run it once (the batch-fold trick of the
reference ``latency.py``); frozen BatchNorm is in eval mode, so only the
order of float reductions changes. A merged checkpoint
(:mod:`mmssl.converters.subtuning_multitask`) rebuilds the model alone:
:meth:`MultiTaskSubTuning.from_checkpoint`.
"""
import copy
import functools
from collections import OrderedDict
from typing import (Any, Callable, Dict, List, NamedTuple, Optional, Sequence,
                    Union)

import torch
import torch.nn as nn
from mmengine.model import BaseModel
from mmengine.registry import DefaultScope
from mmengine.runner.checkpoint import _load_checkpoint, load_checkpoint
from mmpretrain.models.backbones import ResNet, VisionTransformer
from mmpretrain.models.utils import resize_pos_embed
from mmpretrain.structures import DataSample

from mmssl.models.classifiers.subtuning import SubTuningClassifier
from mmssl.models.utils.subtuning import in_blocks
from mmssl.registry import MODELS

#: the ``meta`` entry of a merged multi-task checkpoint
MERGED_META_KEY = 'multitask'

#: backbone attributes that shape the forward; all tasks must agree on them
_STRUCTURE = {
    ResNet: ('deep_stem', 'out_indices', 'norm1_name', 'res_layers'),
    VisionTransformer:
    ('out_type', 'out_indices', 'final_norm', 'num_extra_tokens',
     'interpolate_mode', 'patch_resolution'),
}


class _Unit(NamedTuple):
    """A step of the unrolled backbone forward: the block names it uses
    and ``run(state, module, param) -> state``."""
    names: List[str]
    run: Callable


class _State(NamedTuple):
    x: torch.Tensor
    outs: List[torch.Tensor]
    hw: Optional[tuple] = None


def _touches(unit: _Unit, block: str) -> bool:
    """Whether tuning ``block`` changes ``unit``."""
    return any(
        in_blocks(name, [block]) or in_blocks(block, [name])
        for name in unit.names)


def _resnet_units(bb: ResNet) -> List[_Unit]:
    stem = ['stem'] if bb.deep_stem else ['conv1', bb.norm1_name]

    def run_stem(state, module, param):
        x = state.x
        if bb.deep_stem:
            x = module('stem')(x)
        else:
            x = bb.relu(module(bb.norm1_name)(module('conv1')(x)))
        return _State(bb.maxpool(x), state.outs)

    def block(name, out):

        def run(state, module, param):
            x = module(name)(state.x)
            return _State(x, state.outs + [x] if out else state.outs)

        return _Unit([name], run)

    units = [_Unit(stem, run_stem)]
    for i, layer in enumerate(bb.res_layers):
        n = len(getattr(bb, layer))
        units += [
            block(f'{layer}.{j}', j == n - 1 and i in bb.out_indices)
            for j in range(n)
        ]
    return units


def _vit_units(bb: VisionTransformer) -> List[_Unit]:

    def run_embed(state, module, param):
        x, hw = module('patch_embed')(state.x)
        if bb.cls_token is not None:
            cls_token = param('cls_token').expand(x.shape[0], -1, -1)
            x = torch.cat((cls_token, x), dim=1)
        x = x + resize_pos_embed(
            param('pos_embed'),
            bb.patch_resolution,
            hw,
            mode=bb.interpolate_mode,
            num_extra_tokens=bb.num_extra_tokens)
        x = module('pre_norm')(bb.drop_after_pos(x))
        return _State(x, state.outs, hw)

    last = len(bb.layers) - 1

    def layer(i):
        names = [f'layers.{i}']
        final = i == last and bb.final_norm
        out = i in bb.out_indices
        names += ['ln1'] if final else []
        names += ['ln2'] if out and bb.out_type == 'avg_featmap' else []

        def run(state, module, param):
            x = module(f'layers.{i}')(state.x)
            if final:
                x = module('ln1')(x)
            outs = state.outs
            if out:
                outs = outs + [_vit_output(bb, x, state.hw, module)]
            return _State(x, outs, state.hw)

        return _Unit(names, run)

    embed = ['cls_token', 'pos_embed', 'patch_embed', 'pre_norm']
    return [_Unit(embed, run_embed)] + [layer(i) for i in range(last + 1)]


def _vit_output(bb: VisionTransformer, x: torch.Tensor, hw: tuple,
                module: Callable) -> torch.Tensor:
    """``VisionTransformer._format_output`` with the task's ``ln2``."""
    if bb.out_type == 'raw':
        return x
    if bb.out_type == 'cls_token':
        return x[:, 0]
    patch_token = x[:, bb.num_extra_tokens:]
    if bb.out_type == 'featmap':
        return patch_token.reshape(x.size(0), *hw, -1).permute(0, 3, 1, 2)
    return module('ln2')(patch_token.mean(dim=1))


_UNITS = {ResNet: _resnet_units, VisionTransformer: _vit_units}


class _Branch(nn.Module):
    """One task's own parts: its tuned blocks, neck and head."""

    def __init__(self, model: SubTuningClassifier) -> None:
        super().__init__()
        self.names = list(model.trainable_blocks)
        self.blocks = nn.ModuleDict()
        self.params = nn.ParameterDict()
        for name in self.names:
            key = name.replace('.', '-')
            if name in dict(model.backbone.named_parameters(recurse=False)):
                self.params[key] = getattr(model.backbone, name)
            else:
                self.blocks[key] = model.backbone.get_submodule(name)
        self.neck = model.neck if model.with_neck else None
        self.head = model.head

    def module(self, trunk: nn.Module, name: str) -> nn.Module:
        for block in self.names:
            key = block.replace('.', '-')
            if name == block:
                return self.blocks[key]
            if name.startswith(block + '.'):
                return self.blocks[key].get_submodule(name[len(block) + 1:])
        return trunk.get_submodule(name)

    def param(self, trunk: nn.Module, name: str) -> torch.Tensor:
        if name in self.names:
            return self.params[name.replace('.', '-')]
        return getattr(trunk, name)

    def run(self, unit: _Unit, state: _State, trunk: nn.Module) -> _State:
        """Run ``unit`` with this task's blocks, the trunk's elsewhere."""
        return unit.run(state, lambda n: self.module(trunk, n),
                        lambda n: self.param(trunk, n))


def _supported(backbone: nn.Module) -> Optional[type]:
    for base in _UNITS:
        if isinstance(backbone,
                      base) and type(backbone).forward is base.forward:
            return base
    return None


@MODELS.register_module()
class MultiTaskSubTuning(BaseModel):
    """Several SubTuning tasks in one forward over a shared frozen trunk.

    Inference only: ``forward(inputs, mode='tensor')`` returns a dict task
    name -> logits ``(B, num_classes)`` of that task's head;
    ``mode='predict'`` a dict task name -> list of ``DataSample`` (each
    task fills its own copy of ``data_samples``). Each equals what the
    task's own classifier returns for the same inputs.

    The trunk holds, for every backbone parameter and buffer, the value of
    the tasks that keep it frozen; the tasks must agree on them.

    Args:
        tasks (list): One entry per task: a built
            :class:`SubTuningClassifier` (its modules are used, not copied)
            or ``dict(model=<SubTuningClassifier config>,
            checkpoint=<path of its trained weights>)`` (without
            ``checkpoint``: the weights it is built with).
        task_names (list[str], optional): Names of the tasks, the keys of
            the outputs. Defaults to ``task0``, ``task1``, ...
        data_preprocessor (dict, optional): Defaults to the first task's
            (the tasks must normalise inputs alike).
        check_trunk (bool): Check that the tasks agree on every frozen
            trunk weight and take the trunk from them. Off only when all
            weights are loaded afterwards from a merged file (as
            :meth:`from_checkpoint` does). Defaults to True.
        batch_branches (bool): The default of :meth:`features`. Defaults
            to False.
        init_cfg (dict, optional): Unused; the weights come from the
            tasks.

    Raises:
        ValueError: no task, a task that is not a SubTuningClassifier, an
            unsupported backbone, tasks whose backbones differ in
            structure, or whose frozen trunks differ (the message names the
            first differing ``state_dict`` key and the two tasks).
    """

    def __init__(self,
                 tasks: Sequence[Union[SubTuningClassifier, dict]],
                 task_names: Optional[Sequence[str]] = None,
                 data_preprocessor: Optional[dict] = None,
                 check_trunk: bool = True,
                 batch_branches: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        owner = type(self).__name__
        models = [self._build_task(t, i, owner) for i, t in enumerate(tasks)]
        if not models:
            raise ValueError(f'{owner}: tasks must name at least one task')
        names = list(task_names) if task_names is not None else [
            f'task{i}' for i in range(len(models))
        ]
        if len(names) != len(models) or len(set(names)) != len(names):
            raise ValueError(
                f'{owner}: task_names must be {len(models)} distinct names '
                f'(one per task), got {task_names!r}')
        if data_preprocessor is None:
            self._check_preprocessors(models, names, owner)
            data_preprocessor = models[0].data_preprocessor
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.task_names = names
        base = self._check_structure(models, names, owner)
        self.trunk = copy.deepcopy(models[0].backbone)
        if check_trunk:
            self.trunk.load_state_dict(
                self._shared_state(models, names, owner))
        self.trunk.requires_grad_(False)
        self.branches = nn.ModuleList(_Branch(m) for m in models)
        self.units = _UNITS[base](self.trunk)
        self.batch_branches = bool(batch_branches)
        #: per task, the indices of the units its tuned blocks change
        self.own_units = [{
            i
            for i, unit in enumerate(self.units) if any(
                _touches(unit, b) for b in m.trainable_blocks)
        } for m in models]
        #: per task, the index of the unit where its branch starts (the
        #: number of units for a head-only task)
        self.branch_points = [
            min(own, default=len(self.units)) for own in self.own_units
        ]
        self.eval()

    @staticmethod
    def _build_task(task, index: int, owner: str) -> SubTuningClassifier:
        if isinstance(task, dict):
            if 'model' not in task:
                raise ValueError(
                    f'{owner}: tasks[{index}] must be a SubTuningClassifier '
                    'or dict(model=<its config>, checkpoint=<its weights>), '
                    f'got keys {sorted(task)}')
            model = MODELS.build(task['model'])
            if task.get('checkpoint'):
                load_checkpoint(
                    model, task['checkpoint'], map_location='cpu', strict=True)
            task = model
        if not isinstance(task, SubTuningClassifier):
            raise ValueError(
                f'{owner}: tasks[{index}] is a {type(task).__name__}; each '
                'task must be a SubTuningClassifier (its trainable_blocks '
                'tell which blocks are its own)')
        if getattr(task, 'siamese', False):
            raise ValueError(
                f'{owner}: tasks[{index}] is Siamese (siamese=True); only '
                'plain SubTuning tasks share a trunk here')
        return task

    @staticmethod
    def _check_preprocessors(models, names, owner) -> None:
        first = models[0].data_preprocessor
        for name, model in zip(names[1:], models[1:]):
            other = model.data_preprocessor
            for attr in ('mean', 'std', '_channel_conversion'):
                a, b = getattr(first, attr, None), getattr(other, attr, None)
                same = torch.equal(
                    a, b) if isinstance(a, torch.Tensor) and isinstance(
                        b, torch.Tensor) else (a == b)
                if type(first) is not type(other) or not same:
                    raise ValueError(
                        f'{owner}: tasks {names[0]!r} and {name!r} '
                        'preprocess inputs differently (data_preprocessor.'
                        f'{attr}); give one data_preprocessor')

    @staticmethod
    def _check_structure(models, names, owner) -> type:
        first = models[0].backbone
        base = _supported(first)
        if base is None:
            raise ValueError(
                f'{owner}: backbone {type(first).__name__} is not supported; '
                'supported: mmpretrain ResNet (and its deep-stem variants) '
                'and VisionTransformer')
        for name, model in zip(names[1:], models[1:]):
            other = model.backbone
            if type(other) is not type(first):
                raise ValueError(
                    f'{owner}: task {name!r} has a {type(other).__name__} '
                    f'backbone, task {names[0]!r} a {type(first).__name__}')
            for attr in _STRUCTURE[base]:
                a, b = getattr(first, attr), getattr(other, attr)
                if _plain(a) != _plain(b):
                    raise ValueError(
                        f'{owner}: tasks {names[0]!r} and {name!r} differ '
                        f'in backbone.{attr} ({a!r} vs {b!r})')
        return base

    @staticmethod
    def _shared_state(models, names, owner) -> Dict[str, torch.Tensor]:
        """The trunk's state: each key from the tasks that freeze it."""
        states = [m.backbone.state_dict() for m in models]
        shared = dict(states[0])
        for key in states[0]:
            if any(key not in s for s in states[1:]):
                missing = next(n for n, s in zip(names, states)
                               if key not in s)
                raise ValueError(
                    f'{owner}: tasks {names[0]!r} and {missing!r} do not '
                    f'share a trunk: first differing key backbone.{key} '
                    f'(missing in {missing!r})')
            frozen = [(n, s[key]) for n, s, m in zip(names, states, models)
                      if not in_blocks(key, m.trainable_blocks)]
            if not frozen:
                continue
            ref_name, ref = frozen[0]
            for name, value in frozen[1:]:
                if value.shape != ref.shape or not torch.equal(value, ref):
                    raise ValueError(
                        f'{owner}: tasks {ref_name!r} and {name!r} do not '
                        f'share a frozen trunk: first differing key '
                        f'backbone.{key} (frozen in both); finetune every '
                        'task from the same pretrained checkpoint')
            shared[key] = ref
        for name, state in zip(names[1:], states[1:]):
            extra = [k for k in state if k not in shared]
            if extra:
                raise ValueError(
                    f'{owner}: tasks {names[0]!r} and {name!r} do not share '
                    f'a trunk: first differing key backbone.{extra[0]} '
                    f'(missing in {names[0]!r})')
        return shared

    def train(self, mode: bool = True) -> 'MultiTaskSubTuning':
        """Inference only: the model always stays in eval mode."""
        return super().train(False)

    def unused_trunk_keys(self) -> List[str]:
        """``trunk.*`` keys of ``state_dict`` that no task keeps frozen:
        every task runs its own copy, so the trunk's are never used."""
        return [
            f'trunk.{key}' for key in self.trunk.state_dict() if all(
                in_blocks(key, b.names) for b in self.branches)
        ]

    def merged_state_dict(self) -> 'OrderedDict[str, torch.Tensor]':
        """The weights a merged checkpoint stores: the trunk once (less
        :meth:`unused_trunk_keys`) and every branch's tuned blocks, neck
        and head (``branches.<i>.*``)."""
        unused = set(self.unused_trunk_keys())
        return OrderedDict(
            (k, v) for k, v in self.state_dict().items() if k not in unused)

    @classmethod
    def from_checkpoint(cls,
                        filename: str,
                        map_location: Any = 'cpu',
                        **kwargs) -> 'MultiTaskSubTuning':
        """Build the model from a merged checkpoint alone (written by
        :func:`mmssl.converters.save_multitask_checkpoint`: weights
        :meth:`merged_state_dict`, the config and registry scope in
        ``meta['multitask']``).

        Args:
            filename (str): The merged checkpoint.
            map_location: As for ``torch.load``. Defaults to ``'cpu'``.
            **kwargs: Override arguments of the stored config (e.g.
                ``batch_branches=True``).

        Returns:
            MultiTaskSubTuning: the model in eval mode.

        Raises:
            ValueError: not a merged checkpoint, or its weights do not fit
                the model built from its meta (names the first bad key).
        """
        owner = cls.__name__
        checkpoint = _load_checkpoint(filename, map_location=map_location)
        meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
        info = (meta or {}).get(MERGED_META_KEY)
        if not isinstance(info, dict) or 'model' not in info:
            raise ValueError(
                f'{owner}: {filename!r} is not a merged multi-task '
                f"checkpoint (no meta['{MERGED_META_KEY}']); write one with "
                'tools/model_converters/subtuning_multitask.py')
        cfg = copy.deepcopy(info['model'])
        cfg.pop('type', None)
        cfg.update(kwargs)
        with DefaultScope.overwrite_default_scope(info.get('default_scope')):
            model = cls(**cfg)
        state_dict, own = checkpoint['state_dict'], model.state_dict()
        unused = set(model.unused_trunk_keys())
        missing = [k for k in own if k not in state_dict and k not in unused]
        unexpected = [k for k in state_dict if k not in own]
        if missing or unexpected:
            which = (f'{missing[0]!r} is missing from the file'
                     if missing else f'{unexpected[0]!r} in the file is not '
                     'a weight of the model')
            raise ValueError(
                f'{owner}: the weights of {filename!r} do not fit the model '
                f'built from its meta: {which} ({len(missing)} missing, '
                f'{len(unexpected)} unexpected)')
        model.load_state_dict(state_dict, strict=False)
        return model.eval()

    def features(self,
                 inputs: torch.Tensor,
                 batch_branches: Optional[bool] = None) -> Dict[str, tuple]:
        """Backbone outputs of every task, sharing the frozen prefix.

        Args:
            inputs (Tensor): (B, 3, H, W) preprocessed images.
            batch_branches (bool, optional): Fold the branches that run the
                same frozen unit into one ``(k * B, ...)`` batch. Defaults
                to the model's ``batch_branches``.

        Returns:
            dict: task name -> tuple of backbone outputs, as the task's
            own ``backbone(inputs)``.
        """
        if batch_branches is None:
            batch_branches = self.batch_branches
        if batch_branches:
            return self._batched_features(inputs)

        state, done, saved = _State(inputs, []), 0, {}
        for point in sorted(set(self.branch_points)):
            for unit in self.units[done:point]:
                state = self._run_shared(unit, state)
            saved[point], done = state, point
        feats = {}
        for name, branch, point in zip(self.task_names, self.branches,
                                       self.branch_points):
            state = saved[point]
            for unit in self.units[point:]:
                state = branch.run(unit, state, self.trunk)
            feats[name] = tuple(state.outs)
        return feats

    def _run_shared(self, unit: _Unit, state: _State) -> _State:
        return unit.run(state, self.trunk.get_submodule,
                        functools.partial(getattr, self.trunk))

    def _batched_features(self, inputs: torch.Tensor) -> Dict[str, tuple]:
        """:meth:`features` with the frozen units run on folded batches.

        Members: the shared prefix (``-1``, for the tasks not branched yet)
        and the branched tasks. At each unit the members that run the
        trunk's unit are stacked into one ``(k * B, ...)`` batch (``B`` rows
        each; rebuilt only where a task leaves or joins it); a task whose
        tuned blocks change the unit runs its own copy on its rows (from
        the prefix's rows at its branch point).
        """
        batch, prefix = inputs.shape[0], -1
        points, num_units = self.branch_points, len(self.units)
        pieces = [(inputs, [prefix])]  # (stacked rows, their members)
        outs: Dict[int, List[torch.Tensor]] = {prefix: []}
        hw = None
        for index, unit in enumerate(self.units):
            new = [t for t, p in enumerate(points) if p == index]
            keep_prefix = any(p > index for p in points)
            own = [
                t for t, p in enumerate(points)
                if p < index and index in self.own_units[t]
            ] + new
            # the members that run the trunk's unit
            frozen = {
                t
                for t, p in enumerate(points) if p < index and t not in own
            } | ({prefix} if keep_prefix else set())
            views: Dict[int, torch.Tensor] = {}
            stack_x, stack_members = [], []
            for tensor, members in pieces:
                needed = new and prefix in members  # rows to branch from
                if frozen.issuperset(members) and not needed:
                    stack_x.append(tensor)
                    stack_members += members
                    continue
                for member, rows in zip(members, tensor.split(batch)):
                    views[member] = rows
                    if member in frozen:
                        stack_x.append(rows)
                        stack_members.append(member)
            for task in new:  # the prefix's outputs before this unit
                outs[task] = list(outs[prefix])
            pieces = []
            if stack_x:
                x = stack_x[0] if len(stack_x) == 1 else torch.cat(stack_x)
                state = self._run_shared(unit, _State(x, [], hw))
                hw = state.hw
                for out in state.outs:
                    for member, rows in zip(stack_members, out.split(batch)):
                        outs[member].append(rows)
                pieces.append((state.x, stack_members))
            for task in own:
                source = views[prefix if task in new else task]
                state = self.branches[task].run(unit, _State(source, [], hw),
                                                self.trunk)
                hw = state.hw
                outs[task] += state.outs
                pieces.append((state.x, [task]))
        names = self.task_names
        return {
            names[t]: tuple(outs[t if p < num_units else prefix])
            for t, p in enumerate(points)
        }

    def forward(self,
                inputs: torch.Tensor,
                data_samples: Optional[List[DataSample]] = None,
                mode: str = 'tensor') -> Dict[str, object]:
        """Every task's prediction.

        Args:
            inputs (Tensor): (B, 3, H, W) preprocessed images.
            data_samples (list[DataSample], optional): copied for each task
                in ``'predict'`` mode.
            mode (str): ``'tensor'`` (logits) or ``'predict'``.

        Returns:
            dict: task name -> ``(B, num_classes)`` logits, or -> list of
            ``DataSample`` with ``pred_score`` / ``pred_label``.
        """
        if mode not in ('tensor', 'predict'):
            raise ValueError(f'{type(self).__name__} is inference only: '
                             f"mode must be 'tensor' or 'predict', got "
                             f'{mode!r}; train each task on its own')
        results = {}
        for (name, feats), branch in zip(
                self.features(inputs).items(), self.branches):
            if branch.neck is not None:
                feats = branch.neck(feats)
            if mode == 'tensor':
                results[name] = branch.head(feats)
            else:
                samples = copy.deepcopy(data_samples)
                results[name] = branch.head.predict(feats, samples)
        return results


def _plain(value):
    """Lists and tuples compare alike (``out_indices``)."""
    return list(value) if isinstance(value, (list, tuple)) else value
