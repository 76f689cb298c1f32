# Copyright (c) mmssl contributors. All rights reserved.
"""Drop-path rates as Python floats, so ``torch.compile`` sees one graph.

mmpretrain's ViTs pass each block ``np.linspace(...)[i]``, a NumPy float, to
mmcv's ``DropPath``; mmcv's ``drop_path`` tests ``drop_prob == 0.`` in
Python, which dynamo treats as a data-dependent branch on a NumPy value and
breaks the graph there (mmssl's MAE, tiny or ViT-B: 9 graphs instead of 1,
the recompile limit running the rest of those calls eagerly). The same
rates as Python floats give the same computation and one graph.
"""
import torch.nn as nn
from mmcv.cnn.bricks.drop import DropPath

__all__ = ['python_drop_path_rates']


def python_drop_path_rates(module: nn.Module) -> int:
    """Make every ``DropPath.drop_prob`` under ``module`` a Python float.

    Args:
        module (nn.Module): Any model.

    Returns:
        int: How many rates were converted (were not Python floats).
    """
    converted = 0
    for m in module.modules():
        if isinstance(m, DropPath) and type(m.drop_prob) is not float:
            m.drop_prob = float(m.drop_prob)
            converted += 1
    return converted
