# Copyright (c) mmssl contributors. All rights reserved.
"""Pretrain -> convert -> fine-tune -> evaluate, on the embedded data.

    python tools/analysis_tools/transfer_pipeline.py \
        --method simclr|densecl|mae|data2vec2|random|random-vit \
        --task seg|det [--pretrain-epochs N] [--finetune-epochs N] \
        [--work-dir DIR] [--tag NAME] [--data-root DIR] [--num-train N] \
        [--pretrain-cfg-options k=v ...] [--finetune-cfg-options k=v ...]
    python tools/analysis_tools/transfer_pipeline.py --all --task seg ...

For one method and task it runs, each as its own process:

1. ``tools/train.py`` on the method's tiny pretraining config (skipped for
   ``random``; reused when the same pretraining already exists in the work
   directory, as between ``--task seg`` and ``--task det``);
2. ``tools/model_converters/convert_backbone.py`` to the fine-tuning
   library's key layout (``--to mmseg`` for ResNets in mmseg, ``--to mmdet``
   in mmdet, ``--to mmpretrain`` for the ViTs, which mmseg builds from
   mmpretrain / mmssl classes);
3. ``tools/train.py`` on the tiny transfer config of ``configs/transfer/``
   (``init_cfg=None`` for ``random``);
4. ``tools/test.py`` on the fine-tuned checkpoint, which gives mIoU
   (mmseg ``IoUMetric``) or box mAP (mmdet ``CocoMetric``).

The epochs of both stages can be shortened: the learning-rate schedule is
rescaled to the new length. Every stage writes its config, log and
checkpoints under ``WORK_DIR/<method>/``; the result (metrics, commands,
configs, seconds per stage) goes to ``WORK_DIR/<task>_<method>.json``.
``--all`` runs ``random`` and every method whose configs exist (DenseCL
only once ``configs/densecl/`` has its tiny config), prints a table and
writes ``WORK_DIR/<task>_results.json`` and ``WORK_DIR/<task>_results.md``.
"""
import argparse
import copy
import glob
import json
import math
import os
import os.path as osp
import subprocess
import sys
import time
from typing import Dict, List, Optional

from mmengine.config import Config
from mmengine.logging import MMLogger

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

try:
    import mmssl  # noqa: F401  (stack check + safe checkpoint I/O)
except ModuleNotFoundError as _err:  # a checkout that is not pip-installed
    if _err.name != 'mmssl':
        raise
    sys.path.insert(0, REPO)
    import mmssl  # noqa: F401
from mmssl.engine.runner_utils import (  # noqa: E402
    CFG_OPTIONS_HELP, CfgOptionsAction, ToolError, merge_cfg_options,
    run_tool)
TRAIN = osp.join('tools', 'train.py')
TEST = osp.join('tools', 'test.py')
CONVERT = osp.join('tools', 'model_converters', 'convert_backbone.py')

TASKS = ('seg', 'det')
#: the metric each task reports, as tools/test.py names it, and its label
METRICS = {'seg': ('mIoU', 'mIoU'), 'det': ('coco/bbox_mAP', 'box mAP')}

_SEG = 'configs/transfer/seg/'
_DET = 'configs/transfer/det/'
#: pretraining config (None: random init), backbone family and the tiny
#: transfer config of each task
METHODS: Dict[str, dict] = {
    'random':
    dict(
        pretrain=None,
        family='resnet',
        seg=_SEG + 'fcn_r18-tiny-d8-simclr_1xb8-20e_embedded.py',
        det=_DET + 'faster-rcnn_r18-tiny-fpn-simclr_syncbn_1xb8-8e_'
        'embedded.py'),
    'simclr':
    dict(
        pretrain='configs/simclr/simclr_resnet18-tiny_1xb64-coslr-30e_'
        'embedded.py',
        family='resnet',
        seg=_SEG + 'fcn_r18-tiny-d8-simclr_1xb8-20e_embedded.py',
        det=_DET + 'faster-rcnn_r18-tiny-fpn-simclr_syncbn_1xb8-8e_'
        'embedded.py'),
    'densecl':
    dict(
        pretrain='configs/densecl/densecl_resnet18-tiny_*_embedded.py',
        family='resnet',
        seg=_SEG + 'fcn_r18-tiny-d8-densecl_1xb8-20e_embedded.py',
        det=_DET + 'faster-rcnn_r18-tiny-fpn-densecl_syncbn_1xb8-8e_'
        'embedded.py'),
    'random-vit':
    dict(
        pretrain=None,
        family='vit',
        seg=_SEG + 'upernet_vit-tiny-p8-mae_1xb8-20e_embedded.py'),
    'mae':
    dict(
        pretrain='configs/mae/mae_vit-tiny-p8_1xb64-coslr-30e_embedded.py',
        family='vit',
        seg=_SEG + 'upernet_vit-tiny-p8-mae_1xb8-20e_embedded.py'),
    'data2vec2':
    dict(
        pretrain='configs/data2vec2/data2vec2_vit-tiny-p8_1xb64-coslr-30e_'
        'embedded.py',
        family='vit',
        seg=_SEG + 'upernet_vit-tiny-p8-data2vec2_1xb8-20e_embedded.py'),
}
#: ``convert_backbone.py --to`` for (task, backbone family)
CONVERT_TO = {
    ('seg', 'resnet'): 'mmseg',
    ('det', 'resnet'): 'mmdet',
    ('seg', 'vit'): 'mmpretrain',
}


class PipelineError(ToolError):
    """A stage failed or the request cannot be run (printed as ``error:``)."""


# --------------------------------------------------------------------------
# configs
# --------------------------------------------------------------------------
def find_config(pattern: str) -> Optional[str]:
    """The config matching ``pattern`` (relative to the repository), or
    None; with several matches the first in sorted order."""
    hits = sorted(glob.glob(osp.join(REPO, pattern)))
    return osp.relpath(hits[0], REPO) if hits else None


def method_configs(method: str, task: str) -> dict:
    """``pretrain`` (or None) and ``finetune`` config paths of a method.

    Raises:
        PipelineError: unknown method, a method without a config for the
            task, or a pretraining config that does not exist (yet).
    """
    if method not in METHODS:
        raise PipelineError(f'unknown method {method!r}; choose from '
                            f'{", ".join(METHODS)}')
    spec = METHODS[method]
    if task not in spec:
        raise PipelineError(
            f'method {method!r} has no {task} transfer config (the '
            f'{spec["family"]} backbones are transferred to '
            f'{", ".join(t for t in TASKS if t in spec)} only)')
    pretrain = None
    if spec['pretrain'] is not None:
        pretrain = find_config(spec['pretrain'])
        if pretrain is None:
            raise PipelineError(f'no pretraining config for {method!r}: '
                                f'{spec["pretrain"]} does not exist')
    finetune = spec[task]
    if not osp.isfile(osp.join(REPO, finetune)):
        raise PipelineError(f'transfer config {finetune} does not exist')
    return dict(pretrain=pretrain, finetune=finetune, family=spec['family'])


def available_methods(task: str) -> List[str]:
    """Methods of ``task`` whose configs all exist, random first."""
    names = []
    for name in METHODS:
        try:
            method_configs(name, task)
        except PipelineError:
            continue
        names.append(name)
    return names


def rescale_schedule(cfg: Config,
                     epochs: int,
                     iters_per_epoch: Optional[int] = None) -> None:
    """Set ``train_cfg.max_epochs`` and stretch the epoch-based schedulers.

    Every ``by_epoch`` scheduler keeps its share of the run: ``begin``,
    ``end`` and ``T_max`` are multiplied by ``epochs / old``. A scheduler
    with ``convert_to_iter_based=True`` is written in iterations when
    ``iters_per_epoch`` is given (each at least one iteration long, so that
    a short warm-up of a tiny run does not vanish), otherwise with
    fractional epochs; the others are rounded to whole epochs (at least
    one). Iteration-based schedulers are left as they are.
    """
    if epochs < 1:
        raise PipelineError(f'epochs must be >= 1, got {epochs}')
    old = cfg.train_cfg.get('max_epochs')
    if old is None:
        raise PipelineError('only epoch-based configs can be rescaled')
    cfg.train_cfg.max_epochs = epochs
    if 'val_interval' in cfg.train_cfg:
        cfg.train_cfg.val_interval = min(cfg.train_cfg.val_interval, epochs)
    factor = epochs / old
    schedulers = cfg.get('param_scheduler') or []
    if isinstance(schedulers, dict):
        schedulers = [schedulers]
    for sched in schedulers:
        if not sched.get('by_epoch', True):
            continue
        begin = sched.get('begin', 0) * factor
        end = sched.get('end', None)
        end = None if end is None or end >= 1e8 else end * factor
        if 'T_max' in sched:
            t_max = (end if end is not None else epochs) - begin
        if sched.get('convert_to_iter_based', False):
            if iters_per_epoch is None:
                sched.begin = begin
                if end is not None:
                    sched.end = end
                if 'T_max' in sched:
                    sched.T_max = t_max
                continue
            begin = round(begin * iters_per_epoch)
            sched.by_epoch = False
            sched.pop('convert_to_iter_based')
            sched.begin = begin
            if end is not None:
                end = max(begin + 1, round(end * iters_per_epoch))
                sched.end = end
            if 'T_max' in sched:
                sched.T_max = max(1, (end if end is not None else round(
                    epochs * iters_per_epoch)) - begin)
            continue
        sched.begin = round(begin)
        if end is not None:
            sched.end = max(sched.begin + 1, round(end))
        if 'T_max' in sched:
            sched.T_max = max(1, round(t_max))


def iters_per_epoch(cfg: Config) -> int:
    """Training iterations per epoch of ``cfg`` (builds its data set)."""
    from mmengine.registry import DATASETS, init_default_scope
    init_default_scope(cfg.get('default_scope', 'mmengine'))
    loader = cfg.train_dataloader
    num = len(DATASETS.build(copy.deepcopy(loader.dataset)))
    batch = loader.batch_size
    if loader.get('drop_last', False):
        return max(1, num // batch)
    return max(1, math.ceil(num / batch))


def _set_data_root(cfg: Config, data_root: str) -> None:
    """Point every data loader (and a COCO evaluator) at ``data_root``."""
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(name)
        if loader is not None and 'data_root' in loader.dataset:
            loader.dataset.data_root = data_root
    for name in ('val_evaluator', 'test_evaluator'):
        evaluator = cfg.get(name)
        if isinstance(evaluator, dict) and evaluator.get('ann_file'):
            evaluator.ann_file = osp.join(data_root, 'det', 'annotations',
                                          'instances_val.json')
    cfg.data_root = data_root


def _drop_frozen_eval(cfg: Config) -> None:
    """Remove frozen-feature evaluation hooks (slow, not needed here)."""
    hooks = cfg.get('custom_hooks') or []
    cfg.custom_hooks = [
        h for h in hooks if 'FrozenEval' not in str(h.get('type', ''))
    ]


def write_pretrain_config(src: str, dst: str, args) -> Config:
    cfg = Config.fromfile(osp.join(REPO, src))
    _set_data_root(cfg, args.data_root)
    _drop_frozen_eval(cfg)
    merge_cfg_options(cfg, args.pretrain_cfg_options, src)
    if args.pretrain_epochs is not None:
        rescale_schedule(cfg, args.pretrain_epochs, iters_per_epoch(cfg))
    cfg.dump(dst)
    return cfg


def write_finetune_config(src: str, dst: str, backbone_ckpt: Optional[str],
                          args) -> Config:
    cfg = Config.fromfile(osp.join(REPO, src))
    _set_data_root(cfg, args.data_root)
    merge_cfg_options(cfg, args.finetune_cfg_options, src)
    if args.finetune_epochs is not None:
        rescale_schedule(cfg, args.finetune_epochs, iters_per_epoch(cfg))
    if backbone_ckpt is None:
        cfg.model.backbone.init_cfg = None
    else:
        cfg.model.backbone.init_cfg = dict(
            type='Pretrained', prefix='backbone.', checkpoint=backbone_ckpt)
    cfg.dump(dst)
    return cfg


# --------------------------------------------------------------------------
# stages
# --------------------------------------------------------------------------
def run_stage(name: str, cmd: List[str], log_file: str,
              logger: MMLogger) -> float:
    """Run ``cmd`` from the repository root, its output into ``log_file``.

    Returns:
        float: seconds taken.

    Raises:
        PipelineError: non-zero exit; the message holds the log's tail.
    """
    shown = ' '.join(
        osp.relpath(c, REPO) if osp.isabs(c) and c.startswith(REPO) else c
        for c in ['python'] + cmd[1:])
    logger.info(f'[{name}] {shown}')
    start = time.time()
    with open(log_file, 'w') as f:
        proc = subprocess.run(
            cmd, cwd=REPO, stdout=f, stderr=subprocess.STDOUT)
    seconds = time.time() - start
    if proc.returncode != 0:
        with open(log_file) as f:
            tail = ''.join(f.readlines()[-30:])
        raise PipelineError(f'{name} failed (exit {proc.returncode}), see '
                            f'{log_file}; last lines:\n{tail}')
    logger.info(f'[{name}] done in {seconds:.0f} s (log: {log_file})')
    return seconds


def _latest_checkpoint(work_dir: str) -> Optional[str]:
    path = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(path):
        return None
    with open(path) as f:
        ckpt = f.read().strip()
    if not osp.isabs(ckpt):
        ckpt = osp.join(REPO, ckpt)
    return ckpt if osp.isfile(ckpt) else None


def pretrain(method: str, config: str, args, logger: MMLogger,
             record: dict) -> str:
    """Pretrain (or reuse an identical earlier pretraining); checkpoint."""
    work_dir = osp.join(args.work_dir, method, 'pretrain')
    os.makedirs(work_dir, exist_ok=True)
    cfg_path = osp.join(work_dir, 'pretrain_config.py')
    new_path = osp.join(work_dir, 'pretrain_config.new.py')
    new_cfg = write_pretrain_config(config, new_path, args)
    done = osp.join(work_dir, 'done.json')
    key = dict(config=config, text=new_cfg.pretty_text)
    ckpt = _latest_checkpoint(work_dir)
    if not args.force and ckpt and osp.isfile(done):
        with open(done) as f:
            earlier = json.load(f)
        if earlier.get('key', earlier) == key:
            os.replace(new_path, cfg_path)
            logger.info(f'[pretrain] reusing {ckpt} (same config; '
                        '--force to run again)')
            record['stages']['pretrain'] = dict(
                seconds=0.,
                reused=ckpt,
                config=cfg_path,
                pretrain_seconds=earlier.get('seconds'))
            return ckpt
    os.replace(new_path, cfg_path)
    if osp.isfile(done):
        os.remove(done)
    cmd = [sys.executable, TRAIN, cfg_path, '--work-dir', work_dir]
    seconds = run_stage('pretrain', cmd, osp.join(work_dir, 'pretrain.log'),
                        logger)
    ckpt = _latest_checkpoint(work_dir)
    if ckpt is None:
        raise PipelineError(f'pretraining wrote no checkpoint in {work_dir}')
    with open(done, 'w') as f:
        json.dump(dict(key=key, seconds=seconds, checkpoint=ckpt), f)
    record['stages']['pretrain'] = dict(
        seconds=seconds, config=cfg_path, checkpoint=ckpt, command=cmd[1:])
    return ckpt


def convert(method: str, ckpt: str, target: str, args, logger: MMLogger,
            record: dict) -> str:
    out = osp.join(args.work_dir, method, f'backbone_{target}.pth')
    os.makedirs(osp.dirname(out), exist_ok=True)
    cmd = [sys.executable, CONVERT, ckpt, out, '--to', target]
    seconds = run_stage(
        'convert', cmd, osp.join(args.work_dir, method,
                                 f'convert_{target}.log'), logger)
    record['stages']['convert'] = dict(
        seconds=seconds, output=out, command=cmd[1:])
    return out


def finetune_and_test(method: str, task: str, config: str,
                      backbone: Optional[str], args, logger: MMLogger,
                      record: dict) -> dict:
    work_dir = osp.join(args.work_dir, method, task + _suffix(args))
    os.makedirs(work_dir, exist_ok=True)
    cfg_path = osp.join(work_dir, 'finetune_config.py')
    write_finetune_config(config, cfg_path, backbone, args)
    cmd = [
        sys.executable, TRAIN, cfg_path, '--work-dir', work_dir,
        '--no-validate'
    ]
    seconds = run_stage('finetune', cmd, osp.join(work_dir, 'finetune.log'),
                        logger)
    ckpt = _latest_checkpoint(work_dir)
    if ckpt is None:
        raise PipelineError(f'fine-tuning wrote no checkpoint in {work_dir}')
    record['stages']['finetune'] = dict(
        seconds=seconds, config=cfg_path, checkpoint=ckpt, command=cmd[1:])

    metrics_file = osp.join(work_dir, 'test_metrics.json')
    cmd = [
        sys.executable, TEST, cfg_path, ckpt, '--work-dir', work_dir, '--out',
        metrics_file, '--out-item', 'metrics'
    ]
    seconds = run_stage('test', cmd, osp.join(work_dir, 'test.log'), logger)
    with open(metrics_file) as f:
        metrics = json.load(f)
    record['stages']['test'] = dict(
        seconds=seconds, metrics_file=metrics_file, command=cmd[1:])
    return metrics


def _suffix(args) -> str:
    """``_<tag>`` of the fine-tuning outputs (empty without ``--tag``)."""
    return f'_{args.tag}' if args.tag else ''


def run_method(method: str, task: str, args, logger: MMLogger) -> dict:
    """All stages of one method; returns (and writes) its record."""
    configs = method_configs(method, task)
    record = dict(
        method=method,
        task=task,
        pretrain_config=configs['pretrain'],
        finetune_config=configs['finetune'],
        pretrain_epochs=args.pretrain_epochs,
        finetune_epochs=args.finetune_epochs,
        tag=args.tag,
        data_root=args.data_root,
        stages={})
    logger.info(f'==== {method} -> {task} ====')
    backbone = None
    if configs['pretrain'] is not None:
        if args.checkpoint:
            ckpt = args.checkpoint
            logger.info(f'[pretrain] using the given checkpoint {ckpt}')
            record['stages']['pretrain'] = dict(
                seconds=0., checkpoint=ckpt, given=True)
        else:
            ckpt = pretrain(method, configs['pretrain'], args, logger,
                            record)
        target = CONVERT_TO[(task, configs['family'])]
        backbone = convert(method, ckpt, target, args, logger, record)
    if args.pretrain_only:
        return record
    metrics = finetune_and_test(method, task, configs['finetune'], backbone,
                                args, logger, record)
    key, label = METRICS[task]
    if key not in metrics:
        raise PipelineError(f'the test gave no {key!r}: {metrics}')
    value = float(metrics[key])
    if task == 'det':
        value *= 100  # COCO mAP in [0, 1] -> percent, as mIoU
    record.update(metric=label, value=round(value, 2), metrics=metrics)
    record['seconds'] = round(
        sum(s['seconds'] for s in record['stages'].values()), 1)
    out = osp.join(args.work_dir, f'{task}_{method}{_suffix(args)}.json')
    with open(out, 'w') as f:
        json.dump(record, f, indent=2)
    logger.info(f'{method} -> {task}: {label} = {value:.2f} '
                f'({record["seconds"]:.0f} s; {out})')
    return record


def format_table(records: List[dict]) -> str:
    """A markdown table of the records of one task."""
    if not records:
        return ''
    label = records[0]['metric']
    lines = [
        f'| method | pretraining | {label} | pretrain s | fine-tune s |',
        '| --- | --- | --- | --- | --- |'
    ]
    for rec in records:
        st = rec['stages']
        pre = 'none (random init)' if rec['pretrain_config'] is None else \
            f'{rec["pretrain_epochs"] or "config"} epochs'
        pre_s = st.get('pretrain', {})
        pre_s = pre_s.get('pretrain_seconds') or pre_s.get('seconds', 0)
        lines.append(f'| {rec["method"]} | {pre} | {rec["value"]:.2f} | '
                     f'{pre_s:.0f} | {st["finetune"]["seconds"]:.0f} |')
    return '\n'.join(lines)


# --------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------
def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Pretrain, convert, fine-tune and evaluate on the '
        'embedded data (segmentation mIoU or detection box mAP).')
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument('--method', choices=list(METHODS))
    group.add_argument(
        '--all',
        action='store_true',
        help='random init and every method with configs for the task')
    parser.add_argument('--task', choices=TASKS, required=True)
    parser.add_argument(
        '--pretrain-epochs',
        type=int,
        help='pretraining epochs (default: the config\'s own)')
    parser.add_argument(
        '--finetune-epochs',
        type=int,
        help='fine-tuning epochs (default: the config\'s own)')
    parser.add_argument(
        '--work-dir',
        default='work_dirs/transfer/embedded',
        help='where every stage writes (default: %(default)s)')
    parser.add_argument(
        '--data-root',
        default='data/embedded',
        help='embedded data set folder (default: %(default)s)')
    parser.add_argument(
        '--num-train',
        type=int,
        help='make a data set of this many classification training images '
        '(detection / segmentation get half) under --data-root')
    parser.add_argument(
        '--num-val', type=int, help='with --num-train: validation images')
    parser.add_argument(
        '--tag',
        help='name of this fine-tuning setting: its outputs go to '
        '<method>/<task>_<tag>/ and <task>_<method>_<tag>.json, beside those '
        'of other settings that share the same pretraining')
    parser.add_argument(
        '--force',
        action='store_true',
        help='pretrain again even if the same pretraining exists')
    parser.add_argument(
        '--checkpoint',
        help='an mmssl pretraining checkpoint of --method (e.g. a longer '
        'run made elsewhere) to convert and fine-tune instead of '
        'pretraining here; give it its own --work-dir, since the converted '
        'backbone is written to WORK_DIR/<method>/')
    parser.add_argument(
        '--pretrain-only',
        action='store_true',
        help='stop after pretraining and conversion (e.g. to pretrain every '
        'method once before fine-tuning for both tasks)')
    parser.add_argument(
        '--pretrain-cfg-options',
        nargs='+',
        action=CfgOptionsAction,
        help='overrides of the pretraining config: ' + CFG_OPTIONS_HELP)
    parser.add_argument(
        '--finetune-cfg-options',
        nargs='+',
        action=CfgOptionsAction,
        help='overrides of the transfer config: ' + CFG_OPTIONS_HELP)
    parser.add_argument(
        '--out',
        help='results JSON (default: WORK_DIR/<task>_results.json '
        'with --all)')
    args = parser.parse_args(argv)
    if args.num_val is not None and args.num_train is None:
        parser.error('--num-val needs --num-train')
    if args.checkpoint is not None:
        pretrained = [m for m in METHODS if METHODS[m]['pretrain']]
        if args.method not in pretrained:
            parser.error('--checkpoint needs --method with a pretraining '
                         f'(one of {", ".join(pretrained)})')
        if not osp.isfile(args.checkpoint):
            parser.error(f'--checkpoint {args.checkpoint}: no such file')
        if args.pretrain_epochs is not None or args.force:
            parser.error('--checkpoint replaces pretraining: drop '
                         '--pretrain-epochs / --force')
    return args


def main(argv=None) -> List[dict]:
    args = parse_args(argv)
    args.work_dir = osp.abspath(args.work_dir)
    args.data_root = osp.abspath(args.data_root)
    os.makedirs(args.work_dir, exist_ok=True)
    logger = MMLogger.get_instance(
        f'transfer_pipeline_{time.time_ns()}',
        logger_name='transfer_pipeline',
        log_file=osp.join(args.work_dir,
                          f'pipeline_{args.task}{_suffix(args)}.log'))

    sys.path.insert(0, REPO)
    from mmssl.datasets import ensure_embedded_data, make_embedded_data
    if args.num_train is not None:
        make_embedded_data(
            args.data_root,
            num_train=args.num_train,
            num_val=args.num_val or max(1, args.num_train // 4))
    else:
        ensure_embedded_data(args.data_root)

    methods = available_methods(args.task) if args.all else [args.method]
    if args.all:
        missing = [m for m in METHODS if m not in methods]
        logger.info(f'methods: {", ".join(methods)}' + (
            f' (no configs for {", ".join(missing)})' if missing else ''))
    records = [run_method(m, args.task, args, logger) for m in methods]
    if args.pretrain_only:
        return records

    table = format_table(records)
    logger.info(f'{args.task} on the embedded data:\n{table}')
    out = args.out
    if out is None and args.all:
        out = osp.join(args.work_dir,
                       f'{args.task}_results{_suffix(args)}.json')
    if out is not None:
        with open(out, 'w') as f:
            json.dump(
                dict(
                    task=args.task,
                    command=' '.join(['python'] + sys.argv),
                    results=records),
                f,
                indent=2)
        with open(osp.splitext(out)[0] + '.md', 'w') as f:
            f.write(table + '\n')
    return records


if __name__ == '__main__':
    run_tool(main)
