# Copyright (c) mmssl contributors. All rights reserved.
"""What the class hierarchy costs: hierarchy-aware vs flat sigmoid BCE.

    python tools/analysis_tools/unidet_cost.py [CONFIG] \\
        [--label-space data/rvc/label_space.json] [--rois 1024] \\
        [--batch 8] [--steps 3] [--repeat 5] [--threads 1] [--out FILE]

Three measurements, each hierarchy vs flat in the same process, interleaved
(hier, flat, hier, flat, ...) so that background load falls on both alike,
median over ``--repeat`` windows:

* ``loss``: the classification loss alone, forward + backward, on
  ``--rois`` random RoIs; with ``--label-space`` (e.g. the 540-class RVC
  space) also at that size;
* ``train_step``: one ``model.train_step`` of the config's detector (data
  preprocessor, forward, loss, backward, SGD update) on one synthetic batch
  of ``--batch`` images, the flat model being the same config with both
  hierarchy flags off and the same initial weights;
* ``inference``: ``model.test_step`` on the same batch (the hierarchy only
  changes training; prediction is the same sigmoid).

Prints a table of milliseconds and the hierarchy / flat ratio.
"""
import argparse
import copy
import json
import logging
import os.path as osp
import statistics
import sys
import time

import torch

from mmssl.engine.runner_utils import load_config, tool_main

DEFAULT = osp.join(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'configs',
    'unidet', 'unidet_cascade-rcnn_r18-fpn_1xb8-hier-400it_embedded.py')


def _median_ms(fns, steps, repeat, warmup=1):
    """Interleaved timing: median milliseconds per call of each fn."""
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


def loss_cost(label_space, rois, steps, repeat):
    """Forward + backward time of the hierarchy and the flat loss."""
    from mmssl.models.unidet import HierarchyBCELoss
    hier = HierarchyBCELoss(label_space, ignore='child+')
    flat = HierarchyBCELoss(set_pos_parents=False, ignore_children=False)
    cols = hier._pos.shape[0]
    g = torch.Generator().manual_seed(0)
    z = torch.randn(rois, cols, generator=g, requires_grad=True)
    labels = torch.randint(0, cols, (rois, ), generator=g)

    def run(loss):
        return lambda: loss(z, labels).backward()

    return cols - 1, _median_ms([run(hier), run(flat)], steps, repeat)


def detector_cost(config, batch, steps, repeat):
    """train_step / test_step time of the hierarchy and the flat model."""
    from mmdet.registry import MODELS
    from mmdet.testing import demo_mm_inputs
    from mmengine.logging import MMLogger
    from mmengine.optim import OptimWrapper
    from mmengine.registry import init_default_scope

    from mmssl.datasets import ensure_embedded_data, prepare_embedded_unidet
    cfg = load_config(config)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    # weight-initialisation reports are not wanted here
    MMLogger.get_current_instance().setLevel(logging.ERROR)
    heads = cfg.model.roi_head.bbox_head
    space = heads[0].loss_cls.label_space
    if not osp.isfile(space) and 'embedded' in space:
        root = space.split('/unidet/')[0]
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
    size = 128
    data = demo_mm_inputs(
        batch, [[3, size, size]] * batch,
        num_items=[3] * batch,
        num_classes=num_classes,
        with_mask=False)
    state = {}
    wrappers = {}
    for name, model in (('hier', hier), ('flat', flat)):
        model.train()
        state[name] = copy.deepcopy(model.state_dict())
        wrappers[name] = OptimWrapper(
            torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9))

    def train(name, model):
        return lambda: model.train_step(data, wrappers[name])

    train_ms = _median_ms(
        [train('hier', hier), train('flat', flat)], steps, repeat)
    for model in (hier, flat):
        model.eval()

    def infer(model):

        def run():
            with torch.no_grad():
                model.test_step(data)

        return run

    infer_ms = _median_ms([infer(hier), infer(flat)], steps, repeat)
    return num_classes, train_ms, infer_ms


@tool_main
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', nargs='?', default=DEFAULT)
    parser.add_argument(
        '--label-space',
        help='also time the loss alone in this label space (e.g. the RVC '
        '540-class label_space.json)')
    parser.add_argument('--rois', type=int, default=1024)
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--steps', type=int, default=3)
    parser.add_argument('--repeat', type=int, default=5)
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--out', help='write the numbers as JSON')
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    rows = []
    classes, train_ms, infer_ms = detector_cost(args.config, args.batch,
                                                args.steps, args.repeat)
    heads = load_config(args.config).model.roi_head.bbox_head
    cfg_space = heads[0].loss_cls.label_space
    spaces = [cfg_space] + ([args.label_space] if args.label_space else [])
    for space in spaces:
        num, ms = loss_cost(space, args.rois, max(args.steps, 10), args.repeat)
        rows.append((f'loss fwd+bwd, {args.rois} RoIs, C={num}', ms))
    rows.append((f'train_step, batch {args.batch}, C={classes}', train_ms))
    rows.append((f'inference, batch {args.batch}, C={classes}', infer_ms))

    width = max(len(r[0]) for r in rows)
    print(f'{"what":<{width}}  {"hier ms":>9}  {"flat ms":>9}  '
          f'{"hier/flat":>9}')
    for what, (h, f) in rows:
        print(f'{what:<{width}}  {h:9.2f}  {f:9.2f}  {h / f:9.3f}')
    print(f'(median of {args.repeat} interleaved windows, '
          f'{args.threads} thread(s), torch {torch.__version__})')
    if args.out:
        with open(args.out, 'w') as f:
            json.dump([
                dict(what=w, hier_ms=h, flat_ms=fl, ratio=h / fl)
                for w, (h, fl) in rows
            ],
                      f,
                      indent=2)
    return 0


if __name__ == '__main__':
    sys.exit(main())
