# Copyright (c) mmssl contributors. All rights reserved.
"""Record the ATen operators a computation dispatches, with their tensors.

Layout properties (a kernel fed a contiguous tensor, a conv writing a
channels-last output) decide whether torch runs a vectorised kernel or a
strided loop / a transposing copy; :class:`OpRecorder` lets a test assert
them without timing anything::

    with OpRecorder() as rec:
        model(x).sum().backward()
    assert all(t.is_contiguous() for t in rec.inputs('gelu_backward'))
"""
from typing import List, NamedTuple, Tuple

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


class OpCall(NamedTuple):
    name: str  #: the operator's name without overload, e.g. ``'gelu'``
    inputs: Tuple[torch.Tensor, ...]
    outputs: Tuple[torch.Tensor, ...]


class OpRecorder(TorchDispatchMode):
    """Every operator dispatched inside the ``with`` block, forward and
    backward, in order (``calls``)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: List[OpCall] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))

        def tensors(tree):
            return tuple(
                t for t in tree_flatten(tree)[0]
                if isinstance(t, torch.Tensor))

        self.calls.append(
            OpCall(func.overloadpacket.__name__, tensors((args, kwargs or {})),
                   tensors(out)))
        return out

    def named(self, name: str) -> List[OpCall]:
        """The calls of operator ``name``."""
        return [c for c in self.calls if c.name == name]

    def inputs(self, name: str) -> List[torch.Tensor]:
        """All tensor inputs of the calls of ``name``."""
        return [t for c in self.named(name) for t in c.inputs]
