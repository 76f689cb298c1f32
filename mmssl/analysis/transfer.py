# Copyright (c) mmssl contributors. All rights reserved.
"""Pretrain -> convert -> fine-tune -> test, each stage its own process.

The stages of ``tools/analysis_tools/transfer_pipeline.py`` (which parses
the command line and loops over methods): for one method and task,

1. ``tools/train.py`` on the method's tiny pretraining config (reused when
   the same pretraining already exists in the work directory);
2. ``tools/model_converters/convert_backbone.py`` to the fine-tuning
   library's key layout (:data:`CONVERT_TO`);
3. ``tools/train.py`` on the tiny transfer config of ``configs/transfer/``;
4. ``tools/test.py`` on the fine-tuned checkpoint (mIoU or box mAP).

Both lengths can be changed; the schedules follow
:func:`~mmssl.analysis.schedule.rescale_schedule`. The stages run the
scripts of the folder that holds mmssl's ``configs/`` and ``tools/`` (a
checkout, or an installed package that ships them).

The functions that take ``args`` read these attributes of the tool's
parsed arguments: ``work_dir``, ``data_root``, ``force``, ``tag``,
``pretrain_epochs``, ``finetune_epochs``, ``pretrain_cfg_options``,
``finetune_cfg_options``, ``checkpoint``, ``pretrain_only``.
"""
import glob
import json
import os
import os.path as osp
import subprocess
import sys
import time
from typing import Dict, List, Optional

from mmengine.config import Config
from mmengine.logging import MMLogger

from mmssl.engine.runner_utils import merge_cfg_options
from mmssl.engine.tool_errors import ToolError
from mmssl.utils.config import mmssl_configs_root
from .schedule import iters_per_epoch, rescale_schedule

__all__ = [
    'TASKS', 'METRICS', 'METHODS', 'CONVERT_TO', 'PipelineError', 'REPO',
    'find_config', 'method_configs', 'available_methods',
    'write_pretrain_config', 'write_finetune_config', 'run_stage', 'pretrain',
    'convert', 'finetune_and_test', 'run_method', 'format_table', 'suffix'
]

#: the folder that holds mmssl's ``configs/`` and ``tools/``
REPO = osp.dirname(mmssl_configs_root() or osp.join(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'configs'))
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


def _rescaled(cfg: Config, epochs: int, src: str) -> Config:
    try:
        return rescale_schedule(
            cfg, epochs=epochs, iters_per_epoch=iters_per_epoch(cfg))
    except ValueError as err:
        raise PipelineError(f'{src}: {err}') from err


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
    """Write the pretraining config ``src`` as run: data root, no frozen
    evaluation hooks, ``--pretrain-cfg-options`` and the rescaled schedule.
    """
    cfg = Config.fromfile(osp.join(REPO, src))
    _set_data_root(cfg, args.data_root)
    _drop_frozen_eval(cfg)
    merge_cfg_options(cfg, args.pretrain_cfg_options, src)
    if args.pretrain_epochs is not None:
        cfg = _rescaled(cfg, args.pretrain_epochs, src)
    cfg.dump(dst)
    return cfg


def write_finetune_config(src: str, dst: str, backbone_ckpt: Optional[str],
                          args) -> Config:
    """Write the transfer config ``src`` as run, its backbone initialised
    from ``backbone_ckpt`` (None: random initialisation)."""
    cfg = Config.fromfile(osp.join(REPO, src))
    _set_data_root(cfg, args.data_root)
    merge_cfg_options(cfg, args.finetune_cfg_options, src)
    if args.finetune_epochs is not None:
        cfg = _rescaled(cfg, args.finetune_epochs, src)
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
    """Convert ``ckpt`` for ``target``; the converted backbone's path."""
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
    """Fine-tune from ``backbone`` and test; the test metrics."""
    work_dir = osp.join(args.work_dir, method, task + suffix(args))
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


def suffix(args) -> str:
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
            ckpt = pretrain(method, configs['pretrain'], args, logger, record)
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
    out = osp.join(args.work_dir, f'{task}_{method}{suffix(args)}.json')
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
