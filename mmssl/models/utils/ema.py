# Copyright (c) mmssl contributors. All rights reserved.
"""EMA teachers with a linearly annealed decay (data2vec, data2vec 2.0).

mmpretrain's ``CosineEMA`` anneals the momentum with a cosine over the whole
run; data2vec anneals the *decay* ``tau = 1 - momentum`` linearly from
``tau_0`` to ``tau_end`` over ``T`` updates and then keeps it (fairseq's
``get_annealed_rate``)::

    tau_t = tau_end - (tau_end - tau_0) * (1 - t / T)   for t < T
    tau_t = tau_end                                     for t >= T
    teacher <- tau_t * teacher + (1 - tau_t) * student

Unlike mmengine's ``BaseAveragedModel``, whose first update *copies* the
source model, every update here is an EMA step: the teacher is an exact copy
of the student when it is created (and after :meth:`LinearAnnealEMA.reset`),
and the k-th update (k = 1, 2, ...) uses ``tau_k``, as fairseq's
``set_num_updates(k)`` does after the k-th optimizer step.
"""
from typing import Optional, Sequence

import torch
import torch.nn as nn
from mmengine.model import ExponentialMovingAverage

from mmssl.registry import MODELS
from mmssl.utils.validation import check_float, check_int


def annealed_decay(step: int, start: float, end: float,
                   anneal_iters: int) -> float:
    """Linearly annealed EMA decay ``tau_step`` (fairseq's rule).

    Args:
        step (int): Number of optimizer updates t.
        start (float): Decay tau_0 at t = 0.
        end (float): Decay tau_end reached at t = anneal_iters.
        anneal_iters (int): Anneal length T; 0 means constant ``end``.

    Returns:
        float: The decay tau_t.
    """
    if step >= anneal_iters:
        return end
    return end - (end - start) * (1 - step / anneal_iters)


@MODELS.register_module()
class LinearAnnealEMA(ExponentialMovingAverage):
    """EMA copy of a model whose decay is annealed linearly (data2vec).

    The averaged copy lives in ``self.module`` and has no gradients. Its
    parameters, buffers and the update counter ``steps`` are in the
    ``state_dict`` of any model that holds this module, so checkpoints carry
    the teacher and ``--resume`` restores it exactly. Floating-point weights
    stay in fp32 even if the holder is cast to half precision.

    Args:
        model (nn.Module): The student to average; it is deep-copied.
        momentum (float): Start momentum ``1 - tau_0`` (mmengine
            convention). Defaults to 2e-4 (tau_0 = 0.9998).
        end_momentum (float): Final momentum ``1 - tau_end``. Defaults to
            1e-5 (tau_end = 0.99999).
        anneal_iters (int): Updates T over which the decay is annealed.
            Defaults to 100000.
        interval (int): Update every ``interval`` calls of
            :meth:`update_parameters`. Defaults to 1.
        device (torch.device, optional): Where to keep the copy.
        update_buffers (bool): Average floating buffers too instead of
            copying them. Defaults to False.
        exclude (Sequence[str]): Dotted names of submodules of ``model``
            the teacher never runs (for data2vec 2.0 text and speech, the
            local encoder whose output the student hands over): they are
            dropped from the copy, so they take no memory, no EMA update and
            no room in checkpoints. Defaults to None (none).
    """

    def __init__(self,
                 model: nn.Module,
                 momentum: float = 2e-4,
                 end_momentum: float = 1e-5,
                 anneal_iters: int = 100000,
                 interval: int = 1,
                 device: Optional[torch.device] = None,
                 update_buffers: bool = False,
                 exclude: Optional[Sequence[str]] = None) -> None:
        name = type(self).__name__
        for key, value in (('momentum', momentum), ('end_momentum',
                                                    end_momentum)):
            check_float(
                value,
                key,
                name,
                low=0,
                high=1,
                inclusive=(True, False),
                note='1 - EMA decay')
        check_int(anneal_iters, 'anneal_iters', name, minimum=0)
        check_int(interval, 'interval', name)
        # mmengine asserts 0 < momentum < 1 and a momentum of 0 (a frozen
        # teacher) is legal here; its momentum is never read (avg_func and
        # the schedule use the two below), so it gets a placeholder.
        super().__init__(
            model,
            momentum=0.5,
            interval=interval,
            device=device,
            update_buffers=update_buffers)
        self.momentum = float(momentum)
        self.end_momentum = float(end_momentum)
        self.anneal_iters = anneal_iters
        self.excluded = tuple(exclude or ())
        for key in self.excluded:
            parent, _, leaf = key.rpartition('.')
            owner = self.module.get_submodule(parent) if parent else \
                self.module
            if not isinstance(getattr(owner, leaf, None), nn.Module):
                raise ValueError(
                    f'{name}: exclude names {key!r}, which is not a submodule '
                    f'of {type(model).__name__}; its submodules are '
                    f'{[n for n, _ in model.named_children()]} (dotted names '
                    'reach deeper ones)')
            setattr(owner, leaf, None)
        if self.excluded:
            self.avg_parameters = (
                self.module.state_dict()
                if update_buffers else dict(self.module.named_parameters()))
        self.module.float()
        self.module.eval()

    @property
    def start_decay(self) -> float:
        return 1. - self.momentum

    @property
    def end_decay(self) -> float:
        return 1. - self.end_momentum

    def decay_at(self, step: int) -> float:
        """The decay ``tau_step`` after ``step`` optimizer updates."""
        return annealed_decay(step, self.start_decay, self.end_decay,
                              self.anneal_iters)

    def avg_func(self, averaged_param: torch.Tensor,
                 source_param: torch.Tensor, steps: int) -> None:
        """In place: ``avg = tau_steps * avg + (1 - tau_steps) * src``."""
        decay = self.decay_at(steps)
        averaged_param.mul_(decay).add_(
            source_param.to(averaged_param.dtype), alpha=1 - decay)

    @torch.no_grad()
    def update_parameters(self, model: nn.Module) -> Optional[float]:
        """One EMA step towards ``model`` (the student).

        Non-trainable source parameters (fixed position embeddings, frozen
        parts) are copied rather than averaged, as in fairseq's EMA.

        Args:
            model (nn.Module): The student; same structure as the copy.

        Returns:
            float | None: The decay used, or None when ``interval`` skipped
            this call.
        """
        step = int(self.steps) + 1
        decay = None
        if step % self.interval == 0:
            decay = self.decay_at(step)
            src = (
                model.state_dict(keep_vars=True)
                if self.update_buffers else dict(model.named_parameters()))
            for name, p_avg in self.avg_parameters.items():
                p_src = src[name]
                if isinstance(p_src, nn.Parameter) and \
                        not p_src.requires_grad:
                    p_avg.data.copy_(p_src.data)
                elif p_avg.dtype.is_floating_point:
                    self.avg_func(p_avg.data, p_src.data.to(p_avg.device),
                                  step)
                else:
                    p_avg.data.copy_(p_src.data)
        if not self.update_buffers:
            src = dict(model.named_buffers())
            for name, b_avg in self.module.named_buffers():
                b_avg.data.copy_(src[name].data.to(b_avg.device))
        self.steps += 1
        return decay

    @torch.no_grad()
    def reset(self, model: nn.Module) -> None:
        """Make the copy equal to ``model`` again and the step count 0."""
        src = model.state_dict()
        for name, value in self.module.state_dict().items():
            value.copy_(src[name].to(value.device))
        self.steps.zero_()

    def _apply(self, fn, *args, **kwargs):
        out = super()._apply(fn, *args, **kwargs)
        # keep the EMA weights in fp32 whatever the holder is cast to
        for t in list(self.module.parameters()) + list(self.module.buffers()):
            if t.is_floating_point() and t.dtype != torch.float32:
                t.data = t.data.float()
        return out

    def extra_repr(self) -> str:
        return (f'momentum={self.momentum}, end_momentum={self.end_momentum},'
                f' anneal_iters={self.anneal_iters}')
