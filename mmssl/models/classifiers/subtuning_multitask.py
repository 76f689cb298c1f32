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
"""
import copy
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModel
from mmengine.runner.checkpoint import load_checkpoint
from mmpretrain.models.backbones import ResNet, VisionTransformer
from mmpretrain.models.utils import resize_pos_embed
from mmpretrain.structures import DataSample

from mmssl.models.classifiers.subtuning import SubTuningClassifier
from mmssl.models.utils.subtuning import in_blocks
from mmssl.registry import MODELS

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
            checkpoint=<path of its trained weights>)``.
        task_names (list[str], optional): Names of the tasks, the keys of
            the outputs. Defaults to ``task0``, ``task1``, ...
        data_preprocessor (dict, optional): Defaults to the first task's
            (the tasks must normalise inputs alike).
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
        self.trunk.load_state_dict(self._shared_state(models, names, owner))
        self.trunk.requires_grad_(False)
        self.branches = nn.ModuleList(_Branch(m) for m in models)
        self.units = _UNITS[base](self.trunk)
        #: per task, the index of the unit where its branch starts
        self.branch_points = [self._branch_point(m) for m in models]
        self.eval()

    def _branch_point(self, model: SubTuningClassifier) -> int:
        """Index of the first unit a tuned block of ``model`` changes
        (the number of units for a head-only task)."""
        for index, unit in enumerate(self.units):
            if any(_touches(unit, b) for b in model.trainable_blocks):
                return index
        return len(self.units)

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

    def features(self, inputs: torch.Tensor) -> Dict[str, tuple]:
        """Backbone outputs of every task, sharing the frozen prefix.

        Args:
            inputs (Tensor): (B, 3, H, W) preprocessed images.

        Returns:
            dict: task name -> tuple of backbone outputs, as the task's
            own ``backbone(inputs)``.
        """

        def shared_module(name):
            return self.trunk.get_submodule(name)

        def shared_param(name):
            return getattr(self.trunk, name)

        state, done, saved = _State(inputs, []), 0, {}
        for point in sorted(set(self.branch_points)):
            for unit in self.units[done:point]:
                state = unit.run(state, shared_module, shared_param)
            saved[point], done = state, point
        feats = {}
        for name, branch, point in zip(self.task_names, self.branches,
                                       self.branch_points):
            state = saved[point]
            for unit in self.units[point:]:
                state = unit.run(
                    state,
                    lambda n, b=branch: b.module(self.trunk, n),
                    lambda n, b=branch: b.param(self.trunk, n))
            feats[name] = tuple(state.outs)
        return feats

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
