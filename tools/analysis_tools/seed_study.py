# Copyright (c) mmssl contributors. All rights reserved.
"""Arms x seeds: train configs with several seeds, report mean and spread.

    python tools/analysis_tools/seed_study.py CONFIG_A CONFIG_B [...] \
        --seeds 0 1 2 --work-dir work_dirs/study --parallel 2 --threads 1 \
        --keys accuracy/top1 acc_pos --out study.json --plot study.png

Every config (an "arm", named after its file) is trained once per seed by
``tools/train.py --work-dir <work-dir>/<arm>/seed<S> --cfg-options
randomness.seed=<S> ...`` (``--parallel`` runs at a time, each with
``--threads`` CPU threads and data loading in the main process, so parallel
runs do not compete for cores). Then each run's last logged value of every
``--keys`` entry (``a|b``: the first of the two that was logged;
``a@max`` / ``a@min`` / ``a@first``: the best / lowest / first value of
the run instead of the last) is read
from its log (or from ``<work-dir>/<arm>/seed<S>_eval.json``, the ``--out``
of ``eval_frozen.py``, when the key is there: ``knn_top1``, ``linear_top1``,
``finetune_top1``) and summarised per arm as mean ± sample std over the
seeds. Runs this tool already finished are not trained again, so an
interrupted study resumes where it stopped; ``--summarize-only`` only reads
the logs.
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from mmssl.analysis import machine_info
from mmssl.analysis.seed_study import (mean_curves, run_dir, split_key,
                                       study_table, summarize_study)
from mmssl.engine.config_options import (check_one_per_config,
                                         parse_options_text)
from mmssl.engine.runner_utils import ToolError, run_tool
from mmssl.visualization import plot_curves

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('configs', nargs='+', help='one config an arm')
    p.add_argument(
        '--names',
        nargs='+',
        default=None,
        help='one name an arm (default: the config file names)')
    p.add_argument(
        '--arm-options',
        nargs='+',
        default=None,
        help="one 'KEY=VALUE KEY=VALUE' string an arm ('-' for none), "
        'after --cfg-options; {seed} and {work_dir} are filled in')
    p.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2])
    p.add_argument(
        '--work-dir', required=True, help='runs go to WORK_DIR/<arm>/seed<S>')
    p.add_argument(
        '--keys',
        nargs='+',
        default=['accuracy/top1'],
        help='logged scalars to report (last value of a run; '
        'KEY@max / KEY@min / KEY@first: the best / lowest / first)')
    p.add_argument(
        '--parallel',
        type=int,
        default=1,
        help='runs trained at the same time')
    p.add_argument(
        '--threads',
        type=int,
        default=None,
        help='CPU threads of each run (OMP_NUM_THREADS)')
    p.add_argument(
        '--cfg-options',
        nargs='+',
        default=[],
        help='extra key=value settings of every run, passed to '
        'tools/train.py')
    p.add_argument(
        '--summarize-only',
        action='store_true',
        help='read the existing runs, train nothing')
    p.add_argument(
        '--per-seed',
        action='store_true',
        help='add each seed\'s value to the table cells')
    p.add_argument('--out', help='JSON file for all numbers')
    p.add_argument(
        '--plot',
        help='PNG file: the first key over training, '
        'mean of the seeds per arm')
    p.add_argument(
        '--xlabel',
        help="x axis of --plot (default: 'epoch' for val metrics, "
        "'iteration' for the rest)")
    args = p.parse_args(argv)
    check_one_per_config(p, args)
    for text, config in zip(args.arm_options or [], args.configs):
        try:  # refuse a malformed item now, not in a run's log later
            parse_options_text(text, f'--arm-options of {config}')
        except ValueError as err:
            p.error(str(err))
    return args


def run_options(text: str, seed: int, work_dir: str) -> list:
    """An arm's ``--arm-options`` string as train.py ``--cfg-options``
    items, ``{seed}`` and ``{work_dir}`` filled in."""
    if text.strip() in ('', '-'):
        return []
    return [
        item.replace('{seed}', str(seed)).replace('{work_dir}', work_dir)
        for item in text.split()
    ]


def arm_name(config: str) -> str:
    return osp.splitext(osp.basename(config))[0]


def _finished(work_dir: str) -> bool:
    """Whether this tool already trained the run in ``work_dir`` to the end
    (it leaves ``<work_dir>.log.ok`` after a run that exited cleanly)."""
    return osp.exists(work_dir + '.log.ok')


def train_one(config: str, work_dir: str, seed: int, threads, options):
    """One ``tools/train.py`` run; its output goes to ``<work_dir>.log``."""
    os.makedirs(osp.dirname(work_dir), exist_ok=True)
    env = dict(os.environ)
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    cmd = [
        sys.executable,
        osp.join(ROOT, 'tools',
                 'train.py'), config, '--work-dir', work_dir, '--cfg-options',
        f'randomness.seed={seed}', 'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False', *options
    ]
    start = time.time()
    with open(work_dir + '.log', 'w') as log:
        rc = subprocess.call(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    if rc != 0:
        raise ToolError(f'training {config} with seed {seed} failed (exit '
                        f'{rc}); see {work_dir}.log')
    open(work_dir + '.log.ok', 'w').close()
    return time.time() - start


def main(argv=None):
    args = parse_args(argv)
    for c in args.configs:
        if not osp.isfile(c):
            raise ToolError(f'config {c} does not exist')
    arms = args.names or [arm_name(c) for c in args.configs]
    if len(set(arms)) != len(arms):
        raise ToolError(f'two arms share a name: {arms}; name them with '
                        '--names')
    extra = dict(zip(arms, args.arm_options or ['-'] * len(arms)))
    if not args.summarize_only:
        jobs = [(c, a, s) for s in args.seeds
                for c, a in zip(args.configs, arms)
                if not _finished(run_dir(args.work_dir, a, s))]
        print(f'{len(jobs)} runs to train, {args.parallel} at a time')

        def job(item):
            c, a, s = item
            options = args.cfg_options + run_options(extra[a], s,
                                                     args.work_dir)
            secs = train_one(c, run_dir(args.work_dir, a, s), s, args.threads,
                             options)
            print(f'done {a} seed {s} in {secs / 60:.1f} min', flush=True)

        with ThreadPoolExecutor(max(1, args.parallel)) as pool:
            list(pool.map(job, jobs))
    summary = summarize_study(args.work_dir, arms, args.seeds, args.keys)
    print(study_table(summary, args.keys, per_seed=args.per_seed))
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(
                dict(
                    summary=summary,
                    seeds=args.seeds,
                    configs=args.configs,
                    arms=dict(zip(arms, args.configs)),
                    argv=sys.argv,
                    machine=machine_info('cpu')),
                f,
                indent=2)
    if args.plot:
        key = split_key(args.keys[0].split('|')[0])[0]
        plot_curves(
            mean_curves(args.work_dir, arms, args.seeds, key),
            args.plot,
            xlabel=args.xlabel or ('epoch' if '/' in key else 'iteration'),
            ylabel=key)
        print(f'curves: {args.plot}')


if __name__ == '__main__':
    run_tool(main)
