# Copyright (c) mmssl contributors. All rights reserved.
"""Where a config's training step spends its time.

Runs the step that ``benchmark_train.py`` times (model + optimizer, a
synthetic batch) under ``torch.profiler`` and prints the operators by self
time (device time on CUDA) and the share of each family (matmul, attention,
norm, activation, optimizer, copy / cast, elementwise, other)::

    python tools/analysis_tools/profile_train_step.py \\
        configs/mae/mae_vit-base-p16_1xb128-amp-coslr-30e_embedded224.py \\
        --device cuda --batch-size 512 --out mae_profile.json

``--graph-breaks`` instead reports how ``torch.compile`` would split the
training forward (graphs, breaks and where they happen; traced on the CPU
with ``torch._dynamo.explain``, nothing compiled) and whether the next
steps reuse those graphs (``--steps`` forwards through ``torch.compile``,
counting the graphs compiled after the first step and the guards that
failed; no code generated).
"""
import argparse
import json
from typing import List, Optional

import mmssl  # noqa: F401  (registers mmssl's parts)
from mmssl.analysis.step_profile import (explain_graph_breaks, format_profile,
                                         profile_train_step)
from mmssl.engine.runner_utils import (CFG_OPTIONS_HELP, CfgOptionsAction,
                                       load_config, merge_cfg_options,
                                       run_tool)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='training config file')
    parser.add_argument('--batch-size', type=int, help='samples per step')
    parser.add_argument('--steps', type=int, default=3, help='steps profiled')
    parser.add_argument(
        '--warmup', type=int, default=3, help='unprofiled steps first')
    parser.add_argument('--device', default='cpu', help="'cpu' or 'cuda'")
    parser.add_argument('--threads', type=int, help='torch threads')
    parser.add_argument('--top', type=int, default=15, help='operators shown')
    parser.add_argument('--out', help='write the profile as JSON')
    parser.add_argument(
        '--graph-breaks',
        action='store_true',
        help='report the torch.compile graph breaks of the training '
        'forward and its recompilations over --steps steps instead of '
        'profiling')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=CfgOptionsAction,
        help='settings of the config: ' + CFG_OPTIONS_HELP)
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> dict:
    args = parse_args(argv)
    cfg = merge_cfg_options(
        load_config(args.config), args.cfg_options, args.config)
    if args.graph_breaks:
        result = explain_graph_breaks(
            cfg, batch_size=args.batch_size or 2, steps=max(args.steps, 2))
        print(f"{result['graphs']} graph(s), {result['breaks']} break(s), "
              f"{result['recompiles']} recompilation(s) in "
              f'{max(args.steps, 2)} steps')
        for r in result['reasons']:
            print(f"  {r['reason']}  at {r['where']}")
        for r in result['recompile_reasons']:
            print(f'  recompiled: guard failed: {r}')
        if args.out:
            with open(args.out, 'w') as f:
                json.dump(dict(args=vars(args), **result), f, indent=2)
        return result
    result = profile_train_step(
        cfg,
        batch_size=args.batch_size,
        steps=args.steps,
        warmup=args.warmup,
        device=args.device,
        threads=args.threads,
        top=args.top)
    print('\n'.join(format_profile(result)))
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(dict(args=vars(args), **result), f, indent=2)
    return result


if __name__ == '__main__':
    run_tool(main)
