# Copyright (c) mmssl contributors. All rights reserved.
"""Subspace Prompt Tuning (SubPT): project prompt gradients onto the
low-rank subspace of the early prompt trajectory."""
import os.path as osp
from typing import Dict, List, Optional, Sequence

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmssl.models.prompt.subspace import (compute_subspace,
                                          project_onto_subspace)
from mmssl.registry import HOOKS

__all__ = ['SubPTHook']


@HOOKS.register_module()
class SubPTHook(Hook):
    """Record the early prompts, build their subspace, project gradients.

    Two ways to use it:

    * **online** (``t_early`` and ``rank``): after each of the first
      ``t_early`` training epochs the trainable prompt parameters are
      flattened into one snapshot ``w_e`` (``D`` values); after epoch
      ``t_early`` the ``(t_early, D)`` trajectory is centred and its top
      ``rank`` right singular vectors form ``U`` ``(r, D)``
      (:func:`compute_subspace`); from then on every gradient of those
      parameters is replaced by ``U^T U g`` before the optimizer step. ``U``
      is also written to ``<work_dir>/subpt_subspace.pth``.
    * **from a file** (``subspace_file``): the paper's three phases — a
      CoOp run with this hook writes ``subpt_subspace.pth``; the full
      retraining from the same seed loads it and projects from the first
      step. (The reference scripts pass a resume checkpoint that their code
      never reads, so their retraining also starts from the seeded init.)

    The projection is a pre-step hook of the optimizer: the gradient of the
    total loss (NFL included; after clipping and, with AMP, on the scaled
    gradient, which commutes with the linear projection) is replaced by its
    projection right before ``optimizer.step()``.

    **Optimizer state at the switch (online mode).** The free epochs leave
    a momentum buffer (SGD ``momentum_buffer``, Adam ``exp_avg``) that
    points out of span(U); kept as it is, it would keep moving the prompt
    out of the subspace for ~1/(1 - momentum) steps after the switch. With
    ``project_optimizer_state=True`` (default) these buffers are projected
    onto span(U) once, when ``U`` is computed. Adam's second moment
    ``exp_avg_sq`` is a per-coordinate scale, not a direction, and is left
    as it is. (The three-phase and file modes project from the first step,
    when no state exists yet.)

    **Weight decay** is added inside the optimizer step and, by default, is
    *not* projected, as in the reference, so with wd > 0 the prompt drifts
    slightly out of span(U). ``project_weight_decay=True`` (SGD only)
    projects ``g + wd * w`` instead and runs the step without its own decay,
    so that every update stays in the subspace.

    The snapshots and ``U`` go into every checkpoint (``subpt``) and come
    back on resume, so a resumed run projects exactly like an uninterrupted
    one.

    Args:
        t_early (int, optional): epochs whose prompts make the trajectory.
        rank (int, optional): r, the subspace dimension (``< t_early``).
        subspace_file (str, optional): a saved ``U`` (``{'basis': (r, D),
            'param_names': [...]}``) to project with from the start.
        param_names (Sequence[str], optional): parameters to record and
            project; default every trainable parameter (CoOp:
            ``prompt_learner.ctx``).
        project_optimizer_state (bool): project the momentum buffers onto
            the subspace when the online switch happens. Defaults to True.
        project_weight_decay (bool): project the weight-decay term with the
            gradient (``torch.optim.SGD`` only). Defaults to False (the
            reference).
        priority (str): hook priority; above the checkpoint hook so that a
            checkpoint of epoch ``t_early`` already holds ``U`` and the
            projected optimizer state.
    """

    #: optimizer state entries that are linear in the gradients
    STATE_KEYS = ('momentum_buffer', 'exp_avg')

    def __init__(self,
                 t_early: Optional[int] = None,
                 rank: Optional[int] = None,
                 subspace_file: Optional[str] = None,
                 param_names: Optional[Sequence[str]] = None,
                 project_optimizer_state: bool = True,
                 project_weight_decay: bool = False,
                 priority: str = 'ABOVE_NORMAL') -> None:
        self.priority = priority
        self.project_optimizer_state = project_optimizer_state
        self.project_weight_decay = project_weight_decay
        if subspace_file is None:
            if t_early is None or rank is None:
                raise ValueError('mmssl.SubPTHook needs t_early and rank, or '
                                 'subspace_file')
            if not 1 <= rank < t_early:
                raise ValueError(f'SubPTHook: rank must be in [1, t_early) '
                                 f'(centred snapshots), got rank={rank}, '
                                 f't_early={t_early}')
        self.t_early, self.rank = t_early, rank
        self.subspace_file = subspace_file
        self.param_names = list(param_names) if param_names else None
        self.snapshots: List[torch.Tensor] = []
        self.basis: Optional[torch.Tensor] = None
        self._handles: list = []

    # ------------------------------------------------------------ helpers
    @staticmethod
    def _model(runner):
        model = runner.model
        return model.module if is_model_wrapper(model) else model

    def _params(self, runner) -> Dict[str, torch.nn.Parameter]:
        named = dict(self._model(runner).named_parameters())
        if self.param_names is None:
            self.param_names = [n for n, p in named.items() if p.requires_grad]
        missing = [n for n in self.param_names if n not in named]
        if missing or not self.param_names:
            trainable = [n for n, p in named.items() if p.requires_grad]
            raise KeyError(f'SubPTHook: parameters {missing or "(none)"} not '
                           f'in the model (trainable: {trainable})')
        return {n: named[n] for n in self.param_names}

    def _flat(self, runner) -> torch.Tensor:
        return torch.cat([
            p.detach().reshape(-1).float().cpu()
            for p in self._params(runner).values()
        ])

    @staticmethod
    def _optimizers(runner) -> list:
        optim_wrapper = runner.optim_wrapper
        wrappers = optim_wrapper.values() if hasattr(
            optim_wrapper, 'values') else [optim_wrapper]
        return [w.optimizer for w in wrappers]

    def _check_basis(self, params: List[torch.nn.Parameter]) -> None:
        total = sum(p.numel() for p in params)
        if self.basis.shape[1] != total:
            raise ValueError(f'SubPTHook: subspace of dimension '
                             f'{self.basis.shape[1]} does not fit the '
                             f'{total} prompt values')

    def _project_list(self, tensors: List[torch.Tensor]) -> None:
        """Project the concatenation of ``tensors`` in place."""
        basis = self.basis.to(tensors[0].device)
        flat = torch.cat([t.reshape(-1) for t in tensors])
        flat = project_onto_subspace(flat, basis)
        for t, part in zip(tensors, flat.split([t.numel() for t in tensors])):
            t.copy_(part.view_as(t))

    def project_optimizer_states(self, runner) -> Dict[str, float]:
        """Project the momentum buffers of the prompt parameters onto
        span(U), in place.

        Returns:
            dict: for each projected state key, the norm of the part that
            was outside the subspace relative to the buffer's norm.
        """
        params = list(self._params(runner).values())
        self._check_basis(params)
        leaks = {}
        for optimizer in self._optimizers(runner):
            for key in self.STATE_KEYS:
                bufs = [optimizer.state.get(p, {}).get(key) for p in params]
                if any(b is None for b in bufs):
                    continue
                before = torch.cat([b.reshape(-1).float() for b in bufs])
                with torch.no_grad():
                    self._project_list(bufs)
                after = torch.cat([b.reshape(-1).float() for b in bufs])
                leaks[key] = float(
                    (before - after).norm() / before.norm().clamp_min(1e-30))
        return leaks

    def _attach(self, runner) -> None:
        """Project the prompt gradients before every optimizer step."""
        self._detach()
        params = list(self._params(runner).values())
        self._check_basis(params)
        ids = {id(p) for p in params}
        optimizers = self._optimizers(runner)
        decays: Dict[int, float] = {}

        def groups(optimizer):
            return [
                g for g in optimizer.param_groups if any(
                    id(p) in ids for p in g['params'])
            ]

        if self.project_weight_decay:
            for optimizer in optimizers:
                if not isinstance(optimizer, torch.optim.SGD):
                    raise TypeError(
                        'SubPTHook: project_weight_decay=True supports '
                        'torch.optim.SGD (weight decay added to the '
                        f'gradient), not {type(optimizer).__name__}; use '
                        'project_weight_decay=False')
                for g in groups(optimizer):
                    others = [
                        p for p in g['params']
                        if id(p) not in ids and p.requires_grad
                    ]
                    if others:
                        raise ValueError(
                            'SubPTHook: project_weight_decay=True needs the '
                            'projected parameters in param groups without '
                            'other trainable parameters')

        def project(optimizer, args, kwargs) -> None:
            grads = [p.grad for p in params]
            if any(g is None for g in grads):
                return
            with torch.no_grad():
                if self.project_weight_decay:
                    for g in groups(optimizer):
                        wd = g['weight_decay']
                        decays[id(g)] = wd
                        for p in g['params']:
                            if wd and id(p) in ids:
                                p.grad.add_(p.detach(), alpha=wd)
                        g['weight_decay'] = 0.
                self._project_list(grads)

        def restore(optimizer, args, kwargs) -> None:
            for g in groups(optimizer):
                if id(g) in decays:
                    g['weight_decay'] = decays.pop(id(g))

        for optimizer in optimizers:
            self._handles.append(optimizer.register_step_pre_hook(project))
            self._handles.append(optimizer.register_step_post_hook(restore))

    def _detach(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    # ------------------------------------------------------------ events
    def before_train(self, runner) -> None:
        if self.basis is None and self.subspace_file is not None:
            if not osp.isfile(self.subspace_file):
                raise FileNotFoundError(
                    f'SubPTHook: subspace file {self.subspace_file!r} does '
                    'not exist; it is written as subpt_subspace.pth in the '
                    'work_dir of a run with SubPTHook(t_early, rank)')
            from mmssl.utils.checkpoint import safe_torch_load  # weights-only
            saved = safe_torch_load(self.subspace_file, map_location='cpu')
            self.basis = saved['basis'].float()
            self.param_names = self.param_names or saved.get('param_names')
        self._params(runner)  # validate the names early
        if self.basis is not None:
            self._attach(runner)

    def after_train_epoch(self, runner) -> None:
        if self.basis is not None or self.t_early is None:
            return
        self.snapshots.append(self._flat(runner))
        if len(self.snapshots) < self.t_early:
            return
        self.basis = compute_subspace(torch.stack(self.snapshots), self.rank)
        torch.save(
            dict(basis=self.basis, param_names=self.param_names),
            osp.join(runner.work_dir, 'subpt_subspace.pth'))
        msg = ''
        if self.project_optimizer_state:
            leaks = self.project_optimizer_states(runner)
            msg = ''.join(f'; {k} projected ({v:.1%} of it was outside)'
                          for k, v in leaks.items())
        runner.logger.info(
            f'SubPT: subspace of rank {self.rank} from epochs '
            f'1..{self.t_early}; projecting prompt gradients from now on'
            f'{msg}')
        self._attach(runner)

    def after_train(self, runner) -> None:
        self._detach()

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint['subpt'] = dict(
            snapshots=[s.clone() for s in self.snapshots],
            basis=None if self.basis is None else self.basis.clone(),
            param_names=self.param_names)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state = checkpoint.get('subpt')
        if state is None:
            return
        self.snapshots = [s.float() for s in state['snapshots']]
        self.basis = state['basis']
        if state.get('param_names'):
            self.param_names = list(state['param_names'])
