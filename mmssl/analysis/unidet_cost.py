# Copyright (c) mmssl contributors. All rights reserved.
"""What Large-UniDet's class hierarchy costs: hierarchy-aware vs flat BCE.

The measurements behind ``tools/analysis_tools/unidet_cost.py``: the
classification loss alone (:func:`loss_cost`) and a whole detector's
training and inference step (:func:`detector_cost`), each against the same
model with the hierarchy switched off, timed interleaved in one process
(:func:`interleaved_median_ms`). :func:`hierarchy_cost` gives the rows the
tool prints.
"""
import copy
import logging
import os.path as osp
import statistics
import time
from typing import Callable, List, Optional, Sequence, Tuple

import torch
from torch import nn

from mmssl.engine.config_options import load_config


def interleaved_median_ms(fns: Sequence[Callable[[], object]],
                          steps: int,
                          repeat: int,
                          warmup: int = 1) -> List[float]:
    """Median milliseconds per call of each function, timed interleaved.

    Each function is called ``warmup`` times, then ``repeat`` rounds time
    ``steps`` calls of each function in turn (f0, f1, f0, f1, ...), so that
    background load falls on all alike.
    """
    for fn in fns:
        for _ in range(warmup):
            fn()
    times = [[] for _ in fns]
    for _ in range(repeat):
        for k, fn in enumerate(fns):
            t0 = time.perf_counter()
            for _ in range(steps):
                fn()
            times[k].append((time.perf_counter() - t0) * 1000 / steps)
    return [statistics.median(t) for t in times]


def loss_cost(label_space: str, rois: int, steps: int,
              repeat: int) -> Tuple[int, List[float]]:
    """Forward + backward time of the hierarchy and the flat loss.

    Args:
        label_space (str): a label-space JSON file.
        rois (int): RoIs per call (random logits, random labels).
        steps (int): calls per timing window.
        repeat (int): windows.

    Returns:
        tuple: the number of classes C (without background) and the
        [hierarchy, flat] median milliseconds per call.
    """
    from mmssl.models.unidet import HierarchyBCELoss
    hier = HierarchyBCELoss(label_space, ignore='child+')
    flat = HierarchyBCELoss(set_pos_parents=False, ignore_children=False)
    cols = hier._pos.shape[0]
    g = torch.Generator().manual_seed(0)
    z = torch.randn(rois, cols, generator=g, requires_grad=True)
    labels = torch.randint(0, cols, (rois, ), generator=g)

    def run(loss):
        return lambda: loss(z, labels).backward()

    return cols - 1, interleaved_median_ms([run(hier), run(flat)], steps,
                                           repeat)


def hier_and_flat_detectors(config: str) -> Tuple[nn.Module, nn.Module, int]:
    """The config's detector and its flat twin, with the same weights.

    The flat twin is the same config with both hierarchy flags of every
    head's ``loss_cls`` off (``set_pos_parents=False``,
    ``ignore_children=False``): a plain sigmoid BCE over the same label
    space. The embedded label space (``<data root>/unidet/unified/
    label_space.json``) is made when the config names it and it is missing.

    Returns:
        tuple: the hierarchy detector, the flat one and the number of
        classes.
    """
    from mmdet.registry import MODELS
    from mmengine.logging import MMLogger
    from mmengine.registry import init_default_scope

    from mmssl.datasets import ensure_embedded_data, prepare_embedded_unidet
    from mmssl.datasets.unidet import EMBEDDED_UNIFIED_DIR
    cfg = load_config(config)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    # weight-initialisation reports are not wanted here
    MMLogger.get_current_instance().setLevel(logging.ERROR)
    heads = cfg.model.roi_head.bbox_head
    space = heads[0].loss_cls.label_space
    made = osp.join(EMBEDDED_UNIFIED_DIR, 'label_space.json')
    if not osp.isfile(space) and space.endswith(made):
        root = space[:-len(made)] or '.'
        ensure_embedded_data(root)
        prepare_embedded_unidet(root)
    num_classes = heads[0].num_classes
    flat_cfg = copy.deepcopy(cfg.model)
    for head in flat_cfg.roi_head.bbox_head:
        head.loss_cls.update(set_pos_parents=False, ignore_children=False)
    torch.manual_seed(0)
    hier = MODELS.build(cfg.model)
    hier.init_weights()
    flat = MODELS.build(flat_cfg)
    flat.load_state_dict(hier.state_dict())
    return hier, flat, num_classes


def detector_cost(config: str, batch: int, steps: int,
                  repeat: int) -> Tuple[int, List[float], List[float]]:
    """``train_step`` / ``test_step`` time of the hierarchy and the flat
    detector (:func:`hier_and_flat_detectors`) on one synthetic batch of
    ``batch`` 128 px images with three boxes each.

    Returns:
        tuple: the number of classes, the [hierarchy, flat] milliseconds of
        a training step (SGD, lr 1e-4) and of an inference step.
    """
    from mmdet.testing import demo_mm_inputs
    from mmengine.optim import OptimWrapper
    hier, flat, num_classes = hier_and_flat_detectors(config)
    size = 128
    data = demo_mm_inputs(
        batch, [[3, size, size]] * batch,
        num_items=[3] * batch,
        num_classes=num_classes,
        with_mask=False)
    wrappers = {}
    for name, model in (('hier', hier), ('flat', flat)):
        model.train()
        wrappers[name] = OptimWrapper(
            torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9))

    def train(name, model):
        return lambda: model.train_step(data, wrappers[name])

    train_ms = interleaved_median_ms(
        [train('hier', hier), train('flat', flat)], steps, repeat)
    for model in (hier, flat):
        model.eval()

    def infer(model):

        def run():
            with torch.no_grad():
                model.test_step(data)

        return run

    infer_ms = interleaved_median_ms([infer(hier), infer(flat)], steps, repeat)
    return num_classes, train_ms, infer_ms


def hierarchy_cost(config: str,
                   label_space: Optional[str] = None,
                   rois: int = 1024,
                   batch: int = 8,
                   steps: int = 3,
                   repeat: int = 5) -> List[dict]:
    """Hierarchy vs flat: the loss (in the config's label space and, given,
    in ``label_space``), a training step and an inference step.

    The loss is timed over ``max(steps, 10)`` calls a window (one call is
    short).

    Returns:
        list[dict]: one row a measurement: ``what``, ``hier_ms``,
        ``flat_ms`` and ``ratio`` (hierarchy / flat).
    """
    rows = []
    classes, train_ms, infer_ms = detector_cost(config, batch, steps, repeat)
    heads = load_config(config).model.roi_head.bbox_head
    spaces = [heads[0].loss_cls.label_space]
    if label_space:
        spaces.append(label_space)
    for space in spaces:
        num, ms = loss_cost(space, rois, max(steps, 10), repeat)
        rows.append((f'loss fwd+bwd, {rois} RoIs, C={num}', ms))
    rows.append((f'train_step, batch {batch}, C={classes}', train_ms))
    rows.append((f'inference, batch {batch}, C={classes}', infer_ms))
    return [
        dict(what=what, hier_ms=h, flat_ms=f, ratio=h / f)
        for what, (h, f) in rows
    ]
