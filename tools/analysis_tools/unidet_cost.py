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
import json
import os.path as osp
import sys

import torch

from mmssl.analysis.unidet_cost import hierarchy_cost
from mmssl.engine.runner_utils import tool_main
from mmssl.utils.table import format_table

DEFAULT = osp.join(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'configs',
    'unidet', 'unidet_cascade-rcnn_r18-fpn_1xb8-hier-400it_embedded.py')

COLUMNS = [('hier_ms', 'hier ms', '.2f'), ('flat_ms', 'flat ms', '.2f'),
           ('ratio', 'hier/flat', '.3f')]


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
    rows = hierarchy_cost(args.config, args.label_space, args.rois, args.batch,
                          args.steps, args.repeat)
    print(format_table(((r['what'], r) for r in rows), COLUMNS, 'what'))
    print(f'(median of {args.repeat} interleaved windows, {args.threads} '
          f'thread(s), torch {torch.__version__})')
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(rows, f, indent=2)
    return 0


if __name__ == '__main__':
    sys.exit(main())
