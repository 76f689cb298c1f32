# Copyright (c) mmssl contributors. All rights reserved.
"""The base-to-novel protocol of prompt tuning on CLIP: zero-shot CLIP,
CoOp, CoOp+SubPT, CoOp+SubPT+NFL (and three-phase SubPT), each evaluated
during training on the base and the novel classes.

The logic behind ``tools/analysis_tools/base_to_novel.py``: every method is
one config trained by an mmengine runner (:func:`method_cfg` sets the CLIP
checkpoint, the schedule length and the evaluation interval); a hook keeps
each validation's ``base`` / ``novel`` / ``hm`` (:class:`ValRecorder`);
zero-shot CLIP is the CoOp model before training, its context initialised
from "a photo of a". :func:`results_table` and :func:`plot_base_to_novel`
show the results.
"""
import json
import os
import os.path as osp
from typing import Callable, Dict, List, Optional, Sequence

from mmengine.config import Config
from mmengine.hooks import Hook

from mmssl.engine.config_options import load_config, merge_cfg_options

#: the embedded-data config of each method
CONFIGS = dict(
    coop='configs/coop/coop_tiny-rn_1xb32-30e_embedded-b2n.py',
    subpt='configs/subpt/coop-subpt_tiny-rn_1xb32-30e_embedded-b2n.py',
    subpt_nfl='configs/subpt/coop-subpt-nfl_tiny-rn_1xb32-30e_embedded-b2n.py',
    subpt_3phase='configs/subpt/'
    'coop-subpt-3phase_tiny-rn_1xb32-30e_embedded-b2n.py')
#: the name of each method in tables and plots
LABELS = dict(
    zeroshot='zero-shot CLIP',
    coop='CoOp',
    subpt='CoOp+SubPT',
    subpt_nfl='CoOp+SubPT+NFL',
    subpt_3phase='CoOp+SubPT (3 phases)')

Results = Dict[str, List[dict]]


class ValRecorder(Hook):
    """Keep the validation metrics of every epoch.

    ``rows`` gets one dict a validation: the last part of each metric name
    (``base_novel/hm`` -> ``hm``) with its value, and ``epoch``.
    """

    priority = 'VERY_LOW'

    def __init__(self) -> None:
        self.rows: List[dict] = []

    def after_val_epoch(self, runner, metrics=None) -> None:
        row = {k.split('/')[-1]: float(v) for k, v in (metrics or {}).items()}
        row['epoch'] = runner.epoch
        self.rows.append(row)


def method_cfg(path: str,
               work_dir: str,
               name: str,
               epochs: int,
               clip_checkpoint: str,
               val_interval: int = 1,
               cfg_options: Optional[dict] = None) -> Config:
    """The config of one method in the protocol.

    ``path`` with its work dir ``work_dir/name``, the CLIP checkpoint, a
    schedule of ``epochs`` (the cosine part rescaled to end there), an
    evaluation every ``val_interval`` epochs, one checkpoint at the end and
    ``cfg_options`` merged last. ``subpt_3phase`` (phase C) reads the
    subspace that the ``subpt`` run of the same ``work_dir`` saved.
    """
    cfg = load_config(path)
    cfg.work_dir = osp.join(work_dir, name)
    cfg.model.clip.checkpoint = clip_checkpoint
    cfg.train_cfg.max_epochs = epochs
    cfg.train_cfg.val_interval = val_interval
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
                hook.subspace_file = osp.join(work_dir, 'subpt',
                                              'subpt_subspace.pth')
    return merge_cfg_options(cfg, cfg_options, path)


def run_base_to_novel(methods: Sequence[str],
                      work_dir: str,
                      clip_checkpoint: str,
                      epochs: int,
                      val_interval: int = 1,
                      configs: Optional[Dict[str, str]] = None,
                      cfg_options: Optional[dict] = None,
                      log: Callable[[str], None] = print) -> Results:
    """Train and evaluate each method; keep the results in
    ``work_dir/results.json``.

    Args:
        methods: keys of :data:`LABELS`, in the order to run them
            (``subpt_3phase`` after ``subpt``).
        work_dir (str): one sub-folder a method, and ``results.json``.
        clip_checkpoint (str): the frozen CLIP of every method.
        epochs (int): training epochs of every method.
        val_interval (int): evaluate every N epochs (and after the last).
        configs (dict, optional): method -> config file (default
            :data:`CONFIGS`); zero-shot CLIP uses the ``coop`` one.
        cfg_options (dict, optional): settings of every method's config.
        log (callable): gets one line a method when it is done.

    Returns:
        dict: method -> the rows of :class:`ValRecorder`. The methods of an
        earlier call in the same ``work_dir`` are kept unless run again.
    """
    from mmssl.engine.machine_cfg import build_runner
    unknown = [m for m in methods if m not in LABELS]
    if unknown:
        raise ValueError(f'unknown methods {unknown}; known: {list(LABELS)}')
    configs = dict(CONFIGS, **(configs or {}))
    os.makedirs(work_dir, exist_ok=True)
    res_path = osp.join(work_dir, 'results.json')
    results: Results = {}
    if osp.isfile(res_path):
        with open(res_path) as f:
            results = json.load(f)
    for method in methods:
        path = configs['coop' if method == 'zeroshot' else method]
        runner = build_runner(
            method_cfg(path, work_dir, method, epochs, clip_checkpoint,
                       val_interval, cfg_options))
        rec = ValRecorder()
        runner.register_hook(rec)
        if method == 'zeroshot':
            runner.model.init_weights()
            runner.val()
            rec.rows[-1]['epoch'] = 0
        else:
            runner.train()
        results[method] = rec.rows
        last = rec.rows[-1]
        log(f'{LABELS[method]:>16}: epoch {last["epoch"]} base '
            f'{last["base"]:.1f} novel {last["novel"]:.1f} '
            f'H {last["hm"]:.1f}')
        with open(res_path, 'w') as f:
            json.dump(results, f, indent=1)
    return results


def results_table(results: Results, epochs: Sequence[int]) -> str:
    """Markdown table: base / novel / H at the chosen epochs (epoch 0 for
    zero-shot CLIP), and the epoch of each method's best base accuracy."""
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


def plot_base_to_novel(results: Results, path: str) -> str:
    """Base, novel and harmonic-mean accuracy over the epochs, one line a
    method (zero-shot CLIP as a dashed level), saved to ``path``."""
    from mmssl.visualization.curves import plot_curve_panels
    panels, hlines = {}, {}
    for key, title in (('base', 'base accuracy'), ('novel', 'novel accuracy'),
                       ('hm', 'harmonic mean')):
        panels[title] = {
            LABELS[m]: ([r['epoch'] for r in rows], [r[key] for r in rows])
            for m, rows in results.items() if m != 'zeroshot'
        }
        hlines[title] = {
            LABELS[m]: rows[0][key]
            for m, rows in results.items() if m == 'zeroshot'
        }
    return plot_curve_panels(
        panels, path, xlabel='epoch', ylabel='top-1 (%)', hlines=hlines)
