# Copyright (c) mmssl contributors. All rights reserved.
"""Run the base-to-novel protocol for zero-shot CLIP, CoOp, CoOp+SubPT and
CoOp+SubPT+NFL, evaluate during training, write a table and a plot.

    python tools/analysis_tools/base_to_novel.py \
        --clip-checkpoint work_dirs/clip_tiny_b128/epoch_150.pth \
        --work-dir work_dirs/b2n [--epochs 30] [--val-interval 3] \
        [--methods coop subpt ...] [--cfg-options k=v ...]

Each method is one config (``--coop``, ``--subpt``, ``--subpt-nfl``,
``--subpt-3phase``; the embedded-data ones by default) evaluated every
``--val-interval`` epochs;
zero-shot CLIP is the CoOp model before training (context initialised from
"a photo of a"). Writes ``results.json``, ``table.md`` and
``curves.png`` under ``--work-dir``; the methods of an earlier call in the
same ``--work-dir`` stay in ``results.json`` unless run again.
"""
import argparse
import json
import os
import os.path as osp
import sys

from mmengine.hooks import Hook

import mmssl  # noqa: F401  (safe weights-only checkpoint loader)
from mmssl.engine.runner_utils import (CFG_OPTIONS_HELP, CfgOptionsAction,
                                       build_runner, load_config,
                                       merge_cfg_options, tool_main)

CONFIGS = dict(
    coop='configs/coop/coop_tiny-rn_1xb32-30e_embedded-b2n.py',
    subpt='configs/subpt/coop-subpt_tiny-rn_1xb32-30e_embedded-b2n.py',
    subpt_nfl='configs/subpt/coop-subpt-nfl_tiny-rn_1xb32-30e_embedded-b2n.py',
    subpt_3phase='configs/subpt/'
    'coop-subpt-3phase_tiny-rn_1xb32-30e_embedded-b2n.py')
LABELS = dict(
    zeroshot='zero-shot CLIP',
    coop='CoOp',
    subpt='CoOp+SubPT',
    subpt_nfl='CoOp+SubPT+NFL',
    subpt_3phase='CoOp+SubPT (3 phases)')


class _Recorder(Hook):
    """Keep the validation metrics of every epoch."""

    priority = 'VERY_LOW'

    def __init__(self):
        self.rows = []

    def after_val_epoch(self, runner, metrics=None):
        row = {k.split('/')[-1]: float(v) for k, v in (metrics or {}).items()}
        row['epoch'] = runner.epoch
        self.rows.append(row)


def _cfg(path, args, name, epochs):
    cfg = load_config(path)
    cfg.work_dir = osp.join(args.work_dir, name)
    cfg.model.clip.checkpoint = args.clip_checkpoint
    cfg.train_cfg.max_epochs = epochs
    cfg.train_cfg.val_interval = args.val_interval
    for sched in cfg.param_scheduler:
        if sched.type == 'CosineAnnealingLR':
            sched.T_max, sched.end = epochs - 1, epochs
    cfg.default_hooks.checkpoint = dict(
        type='CheckpointHook', interval=epochs, max_keep_ckpts=1)
    cfg.log_level = 'WARNING'
    if name == 'subpt_3phase':
        # phase C projects from the first step onto the subspace that the
        # online SubPT run in this work dir (phases A and B) saved
        for hook in cfg.custom_hooks:
            if hook.type == 'mmssl.SubPTHook':
                hook.subspace_file = osp.join(args.work_dir, 'subpt',
                                              'subpt_subspace.pth')
    return merge_cfg_options(cfg, args.cfg_options, path)


def run(args):
    # methods of an earlier call in the same work dir are kept (so a method
    # can be added or re-run on its own); the ones run now replace theirs
    res_path = osp.join(args.work_dir, 'results.json')
    results = {}
    if osp.isfile(res_path):
        with open(res_path) as f:
            results = json.load(f)
    for method in args.methods:
        if method == 'zeroshot':
            runner = build_runner(
                _cfg(args.coop, args, 'zeroshot', args.epochs))
            rec = _Recorder()
            runner.register_hook(rec)
            runner.model.init_weights()
            runner.val()
            rec.rows[-1]['epoch'] = 0
            results[method] = rec.rows
        else:
            path = dict(
                coop=args.coop,
                subpt=args.subpt,
                subpt_nfl=args.subpt_nfl,
                subpt_3phase=args.subpt_3phase)[method]
            runner = build_runner(_cfg(path, args, method, args.epochs))
            rec = _Recorder()
            runner.register_hook(rec)
            runner.train()
            results[method] = rec.rows
        last = results[method][-1]
        print(
            f'{LABELS[method]:>16}: epoch {last["epoch"]} base '
            f'{last["base"]:.1f} novel {last["novel"]:.1f} '
            f'H {last["hm"]:.1f}',
            flush=True)
        with open(osp.join(args.work_dir, 'results.json'), 'w') as f:
            json.dump(results, f, indent=1)
    return results


def table(results, epochs):
    """Markdown table: B / N / H at chosen epochs, plus each best base."""
    lines = [
        '| method | epoch | base | novel | H |',
        '| --- | --- | --- | --- | --- |'
    ]
    for method, rows in results.items():
        by_epoch = {r['epoch']: r for r in rows}
        for e in ([0] if method == 'zeroshot' else epochs):
            if e in by_epoch:
                r = by_epoch[e]
                lines.append(f'| {LABELS[method]} | {e} | {r["base"]:.1f} | '
                             f'{r["novel"]:.1f} | {r["hm"]:.1f} |')
        if method != 'zeroshot':
            best = max(rows, key=lambda r: r['base'])
            lines.append(f'| {LABELS[method]} (best base) | {best["epoch"]} '
                         f'| {best["base"]:.1f} | {best["novel"]:.1f} | '
                         f'{best["hm"]:.1f} |')
    return '\n'.join(lines) + '\n'


def plot(results, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), sharex=True)
    titles = ('base accuracy', 'novel accuracy', 'harmonic mean')
    for ax, key, title in zip(axes, ('base', 'novel', 'hm'), titles):
        for method, rows in results.items():
            if method == 'zeroshot':
                ax.axhline(
                    rows[0][key], color='gray', ls='--', label=LABELS[method])
            else:
                ax.plot([r['epoch'] for r in rows], [r[key] for r in rows],
                        label=LABELS[method])
        ax.set_title(title)
        ax.set_xlabel('epoch')
        ax.grid(alpha=0.3)
    axes[0].set_ylabel('top-1 (%)')
    axes[-1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


@tool_main
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--clip-checkpoint', required=True)
    parser.add_argument('--work-dir', default='work_dirs/base_to_novel')
    parser.add_argument('--epochs', type=int, default=30)
    parser.add_argument(
        '--methods',
        nargs='+',
        default=['zeroshot', 'coop', 'subpt', 'subpt_nfl'],
        choices=list(LABELS))
    parser.add_argument('--coop', default=CONFIGS['coop'])
    parser.add_argument('--subpt', default=CONFIGS['subpt'])
    parser.add_argument('--subpt-nfl', default=CONFIGS['subpt_nfl'])
    parser.add_argument(
        '--subpt-3phase',
        default=CONFIGS['subpt_3phase'],
        help='phase C of three-phase SubPT; needs the subpt method run '
        'first in the same --work-dir (its subpt_subspace.pth)')
    parser.add_argument(
        '--table-epochs',
        type=int,
        nargs='+',
        default=None,
        help='epochs shown in the table (default: 1, 1/4, 1/2, 3/4, last)')
    parser.add_argument(
        '--val-interval',
        type=int,
        default=1,
        help='evaluate every N epochs (and after the last)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=CfgOptionsAction,
        help='settings of every method\'s config: ' + CFG_OPTIONS_HELP)
    parser.add_argument(
        '--plot-only',
        action='store_true',
        help='redraw table and plot from <work-dir>/results.json')
    args = parser.parse_args(argv)
    os.makedirs(args.work_dir, exist_ok=True)
    if args.plot_only:
        with open(osp.join(args.work_dir, 'results.json')) as f:
            results = json.load(f)
    else:
        results = run(args)
    n = args.epochs
    epochs = args.table_epochs or sorted({1, n // 4, n // 2, 3 * n // 4, n})
    md = table(results, epochs)
    with open(osp.join(args.work_dir, 'table.md'), 'w') as f:
        f.write(md)
    print(md)
    plot(results, osp.join(args.work_dir, 'curves.png'))
    return 0


if __name__ == '__main__':
    sys.exit(main())
