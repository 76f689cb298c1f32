# Copyright (c) mmssl contributors. All rights reserved.
"""End to end: CoOp+SubPT+NFL base-to-novel config on the embedded data,
with a tiny CLIP made in the test (no downloads), then the protocol tool."""
import json
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from mmssl.models.clip import CLIPPretrainer

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CFG = osp.join(ROOT, 'configs', 'subpt',
               'coop-subpt-nfl_tiny-rn_1xb32-30e_embedded-b2n.py')
TINY = dict(
    embed_dim=32,
    vision=dict(width=8, image_size=32),
    text=dict(width=32, heads=2, layers=1, context_length=16))


def _clip_ckpt(path):
    torch.manual_seed(0)
    model = CLIPPretrainer(arch='tiny-rn', arch_overrides=TINY)
    torch.save(dict(state_dict=model.state_dict()), path)
    return path


def test_subpt_nfl_config_trains_and_evaluates(tmp_path):
    ckpt = _clip_ckpt(str(tmp_path / 'clip.pth'))
    cfg = Config.fromfile(CFG)
    cfg.work_dir = str(tmp_path / 'work')
    cfg.model.clip = dict(arch='tiny-rn', checkpoint=ckpt, **TINY)
    cfg.train_dataloader.dataset.num_shots = 2  # 10 images, 1 batch
    cfg.train_dataloader.batch_size = 10
    cfg.val_dataloader.dataset.dataset.indices = 45  # 45 val images
    cfg.val_dataloader.batch_size = 45
    cfg.test_dataloader = cfg.val_dataloader
    cfg.train_cfg.max_epochs = 3
    cfg.param_scheduler[1].update(T_max=2, end=3)
    cfg.custom_hooks[1].update(t_early=2, rank=1)
    cfg.log_level = 'WARNING'
    runner = Runner.from_cfg(cfg)
    runner.train()
    metrics = runner.message_hub.get_scalar('val/base_novel/hm')
    assert metrics is not None
    model = runner.model
    assert model.class_names[:5] == [
        'circle', 'ellipse', 'semicircle', 'triangle', 'square'
    ]
    assert model.num_base == 5 and model.nfl_names[0] == 'pentagon'
    raw = torch.load(osp.join(cfg.work_dir, 'epoch_3.pth'), weights_only=True)
    assert raw['subpt']['basis'].shape == (1, model.prompt_learner.ctx.numel())
    assert osp.isfile(osp.join(cfg.work_dir, 'subpt_subspace.pth'))


def test_base_to_novel_tool(tmp_path):
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'base_to_novel',
        osp.join(ROOT, 'tools', 'analysis_tools', 'base_to_novel.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    results = {
        'zeroshot': [dict(epoch=0, base=50., novel=40., hm=44.4)],
        'coop':
        [dict(epoch=e, base=60. + e, novel=40. - e, hm=45.) for e in (1, 2)]
    }
    (tmp_path / 'results.json').write_text(json.dumps(results))
    assert tool.main([
        '--clip-checkpoint', 'unused', '--work-dir',
        str(tmp_path), '--epochs', '2', '--plot-only'
    ]) == 0
    md = (tmp_path / 'table.md').read_text()
    assert '| CoOp (best base) | 2 | 62.0 | 38.0 | 45.0 |' in md
    assert osp.isfile(tmp_path / 'curves.png')


def test_three_phase_subpt_reads_the_online_runs_subspace(tmp_path):
    from mmssl.analysis.base_to_novel import CONFIGS, method_cfg
    cfg = method_cfg(CONFIGS['subpt_3phase'], str(tmp_path), 'subpt_3phase',
                     30, 'clip.pth', 3)
    hooks = [h for h in cfg.custom_hooks if h.type == 'mmssl.SubPTHook']
    assert len(hooks) == 1
    # phase C: no online trajectory, U from the subpt run of this work dir
    assert hooks[0].get('t_early') is None
    assert hooks[0].subspace_file == osp.join(
        str(tmp_path), 'subpt', 'subpt_subspace.pth')
    assert cfg.model.clip.checkpoint == 'clip.pth'
    # the other methods are left as their configs say
    cfg = method_cfg(CONFIGS['subpt'], str(tmp_path), 'subpt', 30, 'clip.pth',
                     3)
    hook = [h for h in cfg.custom_hooks if h.type == 'mmssl.SubPTHook'][0]
    assert (hook.t_early, hook.rank) == (9, 4)


@pytest.mark.parametrize('config', [
    'coop/coop_tiny-rn_1xb32-30e_embedded-b2n.py',
    'coop/coop_rn50_1xb32-100e-4shot-b2n_dtd.py',
    'subpt/coop-subpt-nfl_rn50_1xb32-100e-4shot-b2n_imagenet.py',
])
def test_coop_schedule_warms_up_one_epoch_then_gives_the_lr_back(config):
    """mmengine's ConstantLR restores the lr on the step that reaches
    ``end - begin - 1``; with ``end=1`` it never would."""
    from mmengine.optim.scheduler import ConstantLR, CosineAnnealingLR
    cfg = Config.fromfile(osp.join(ROOT, 'configs', config))
    lr = cfg.optim_wrapper.optimizer.lr
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    scheds = []
    for s in cfg.param_scheduler:
        s = dict(s)
        cls = dict(
            ConstantLR=ConstantLR,
            CosineAnnealingLR=CosineAnnealingLR)[s.pop('type')]
        scheds.append(cls(opt, **s))
    lrs = []
    for _ in range(cfg.train_cfg.max_epochs):
        lrs.append(opt.param_groups[0]['lr'])
        opt.step()
        for s in scheds:
            s.step()
    assert lrs[0] == pytest.approx(lr * 1e-5 / 0.002)
    assert lrs[1] == pytest.approx(lr)
    assert all(a >= b for a, b in zip(lrs[1:], lrs[2:]))
    assert 0 < lrs[-1] < 0.01 * lr


DATASETS_11 = [
    'imagenet', 'caltech101', 'oxford_pets', 'stanford_cars', 'flowers102',
    'food101', 'fgvc_aircraft', 'sun397', 'dtd', 'eurosat', 'ucf101'
]


@pytest.mark.parametrize('data', DATASETS_11)
def test_rn50_nfl_targets_use_the_reference_ensemble(data):
    """The RN50 SubPT+NFL configs: 80 OpenAI templates + CoOp's template of
    the data set (none added on ImageNet); SubPT t_early 30, rank 10."""
    from mmssl.models.clip import (COOP_DATASET_TEMPLATES,
                                   OPENAI_IMAGENET_TEMPLATES,
                                   resolve_templates)
    cfg = Config.fromfile(
        osp.join(ROOT, 'configs', 'subpt',
                 f'coop-subpt-nfl_rn50_1xb32-100e-4shot-b2n_{data}.py'))
    nfl = cfg.model.nfl
    assert (nfl.names, nfl.weight, nfl.loss) == ('novel', 1.0, 'cosine')
    templates = resolve_templates(nfl.templates)
    assert templates[:80] == list(OPENAI_IMAGENET_TEMPLATES)
    extra = [] if data == 'imagenet' else [COOP_DATASET_TEMPLATES[data]]
    assert templates[80:] == extra
    hook = [h for h in cfg.custom_hooks if h.type == 'mmssl.SubPTHook'][0]
    assert (hook.t_early, hook.rank) == (30, 10)
    assert cfg.model.n_ctx == 16 and cfg.model.get('ctx_init') is None
