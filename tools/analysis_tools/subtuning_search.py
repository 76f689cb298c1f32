# Copyright (c) mmssl contributors. All rights reserved.
"""SubTuning: finetuning profile and greedy selection of backbone blocks.

    python tools/analysis_tools/subtuning_search.py {profile,greedy} CONFIG
        [--work-dir DIR] [--blocks B [B ...]] [--pairs]
        [--eps 0.01] [--start non|all|best]
        [--seeds S [S ...]] [--num-folds 5] [--cv | --use-val-split]
        [--split-seed 42] [--cfg-options KEY=VALUE ...]
        [--out JSON] [--plot PNG] [--snippet PY] [--keep-checkpoints]
        [--verbose]

``CONFIG`` is a SubTuning config (``model.type='mmssl.SubTuningClassifier'``,
e.g. ``configs/subtuning/subtuning_*.py``); every run trains it with
``model.trainable_blocks`` set to one subset of ``--blocks`` (default: all
blocks of the backbone's stages, ``layer1.0`` ... of a ResNet,
``layers.0`` ... of a ViT) and reads the validation top-1 (a fraction).

* ``profile``: every single block (``--pairs``: also every pair of
  neighbouring blocks), no block (linear probe) and all the blocks ->
  ``WORK_DIR/profile.json`` and ``WORK_DIR/profile.png``.
* ``greedy``: the greedy search (``--start non`` adds blocks to the empty
  set, ``all`` removes them from all, ``best`` starts from the better of
  the two; a step may lose up to ``--eps`` against the best) ->
  ``WORK_DIR/greedy.json``, ``WORK_DIR/greedy.png`` and the config
  ``WORK_DIR/greedy_blocks.py`` (``_base_`` = CONFIG, ``model =
  dict(trainable_blocks=[...])``; train it with ``tools/train.py``, or
  several seeds with ``tools/analysis_tools/seed_study.py``, for the test
  accuracy of the chosen blocks).

Selection data: by default the runs train on 4 of 5 folds of the config's
training set and validate on the fifth (``--cv``: mean over all 5 folds,
``--num-folds`` to change k); the config's val split, the test split of a
study, is not used unless ``--use-val-split``. ``--seeds``: mean over
several training seeds. Runs go to ``WORK_DIR/<mode>/<blocks>/fold<k>``;
each finished run is cached there, so after a crash the same command trains
only what is missing. Shorter runs for a quick profile: ``--cfg-options
train_cfg.max_epochs=3 param_scheduler.0.T_max=3``; fewer labels:
``train_dataloader.dataset.fraction=0.1``.
"""
import argparse
import os.path as osp
import shlex
import sys

from mmssl.analysis.subtuning_search import SubsetEvaluator, save_json
from mmssl.analysis.subtuning_select import (finetuning_profile, greedy_search,
                                             greedy_subsets, plot_greedy,
                                             plot_profile, profile_subsets,
                                             write_snippet)
from mmssl.engine.runner_utils import (CFG_OPTIONS_HELP, CfgOptionsAction,
                                       run_tool)


def parse_args(argv=None):
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument('config', help='SubTuning config file')
    common.add_argument(
        '--work-dir',
        help='runs, cache and results (default: '
        'work_dirs/subtuning_search/<config name>)')
    common.add_argument(
        '--blocks',
        nargs='+',
        help='candidate blocks (default: every block of the backbone\'s '
        'stages, e.g. layer1.0 ... layer4.1)')
    common.add_argument(
        '--seeds',
        nargs='+',
        type=int,
        default=[0],
        help='training seeds of every subset; the accuracy is their mean')
    common.add_argument(
        '--num-folds',
        type=int,
        default=5,
        help='k of the k-fold split of the training set (default 5)')
    data = common.add_mutually_exclusive_group()
    data.add_argument(
        '--cv',
        action='store_true',
        help='mean over all k folds (cross-validation) instead of fold 0')
    data.add_argument(
        '--use-val-split',
        action='store_true',
        help='validate on the config\'s val set instead of a held-out part '
        'of the training set')
    common.add_argument(
        '--split-seed',
        type=int,
        default=42,
        help='seed of the k-fold shuffle (default 42)')
    common.add_argument(
        '--cfg-options',
        nargs='+',
        action=CfgOptionsAction,
        help=CFG_OPTIONS_HELP)
    common.add_argument(
        '--out', help='results JSON (default: WORK_DIR/<mode>.json)')
    common.add_argument(
        '--plot', help='PNG picture (default: WORK_DIR/<mode>.png)')
    common.add_argument(
        '--keep-checkpoints',
        action='store_true',
        help='keep the config\'s checkpoint hook (default: no checkpoints)')
    common.add_argument(
        '--verbose',
        action='store_true',
        help='show the runs\' logs on the console (default: each run\'s '
        'console output goes to stdout.log in its work dir)')
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    modes = parser.add_subparsers(dest='mode', required=True)
    profile = modes.add_parser(
        'profile',
        parents=[common],
        help='accuracy of every single block (and pair)')
    profile.add_argument(
        '--pairs',
        action='store_true',
        help='also every pair of consecutive blocks')
    greedy = modes.add_parser(
        'greedy', parents=[common], help='greedy subset selection')
    greedy.add_argument(
        '--eps',
        type=float,
        default=0.01,
        help='tolerance: a step may lose this much accuracy (fraction) '
        'against the best without ending the search (default 0.01)')
    greedy.add_argument(
        '--start',
        choices=['non', 'all', 'best'],
        default='non',
        help='non: add blocks to the empty set; all: remove blocks from '
        'all; best: start from the better of the two (default non)')
    greedy.add_argument(
        '--snippet',
        help='config file of the chosen blocks (default: '
        'WORK_DIR/greedy_blocks.py)')
    return parser.parse_args(argv)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    name = osp.splitext(osp.basename(args.config))[0]
    work_dir = args.work_dir or osp.join('work_dirs', 'subtuning_search', name)
    command = ' '.join(
        shlex.quote(a)
        for a in ['python', 'tools/analysis_tools/subtuning_search.py'] + argv)
    evaluator = SubsetEvaluator(
        args.config,
        work_dir,
        mode=args.mode,
        cfg_options=args.cfg_options,
        seeds=args.seeds,
        use_val_split=args.use_val_split,
        num_folds=args.num_folds,
        cv=args.cv,
        split_seed=args.split_seed,
        keep_checkpoints=args.keep_checkpoints,
        quiet=not args.verbose)
    blocks = evaluator.resolve(args.blocks)
    data = evaluator.describe_data()
    print(f'{args.mode} of {len(blocks)} blocks: {", ".join(blocks)}\n'
          f'selection data: {data}')
    out = args.out or osp.join(work_dir, f'{args.mode}.json')
    plot = args.plot or osp.join(work_dir, f'{args.mode}.png')
    report = dict(
        config=args.config,
        command=command,
        data=data,
        metric='validation accuracy/top1 as a fraction (percent / 100)',
        cfg_options=evaluator.cfg_options,
        settings=evaluator.settings,
        seeds=evaluator.seeds)
    if args.mode == 'profile':
        with evaluator.progress(
                len(profile_subsets(blocks, args.pairs)), 'profile'):
            result = finetuning_profile(evaluator, blocks, args.pairs)
        rows = dict(result['single'], **result['pairs'])
        rows['(linear probe)'] = result['linear_probe']
        rows[f'(all {len(blocks)} blocks)'] = result['all_blocks']
        width = max(map(len, rows))
        print('validation top-1:\n' +
              '\n'.join(f'  {label:<{width}}  {acc:.4f}'
                        for label, acc in rows.items()))
        plot_profile(result, plot, title=f'finetuning profile: {name}')
    else:
        with evaluator.progress(greedy_subsets(len(blocks)), 'greedy'):
            result = greedy_search(evaluator, blocks, args.eps, args.start)
        snippet = args.snippet or osp.join(work_dir, 'greedy_blocks.py')
        write_snippet(snippet, result['selected'], result['accuracy'],
                      args.config, command, data)
        report['snippet'] = snippet
        print(f'selected blocks: {result["selected"]} (validation top-1 '
              f'{result["accuracy"]:.4f}); config: {snippet}')
        plot_greedy(result, plot, title=f'greedy selection: {name}')
    report.update(
        result,
        runs=evaluator.results,
        trained_runs=evaluator.num_trained,
        plot=plot)
    save_json(report, out)
    print(f'results: {out}\npicture: {plot}')
    return report


if __name__ == '__main__':
    run_tool(main)
