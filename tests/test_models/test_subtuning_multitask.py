# Copyright (c) mmssl contributors. All rights reserved.
"""MultiTaskSubTuning (spec subtuning.md sections 2 and 6): branches folded
into the batch, the merged-checkpoint methods, the trunk-check switch."""
import os.path as osp
import sys

import pytest
import torch
from mmengine.registry import init_default_scope

from mmssl.analysis import make_subtuning_tasks
from mmssl.models import MultiTaskSubTuning
from mmssl.registry import MODELS

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from subtuning_helpers import subtuning_cfg  # noqa: E402
from subtuning_helpers import tiny_resnet, tiny_vit

init_default_scope('mmpretrain')

RESNET = tiny_resnet()
VIT = tiny_vit()


def _cfg(backbone):
    return dict(default_scope='mmpretrain', model=subtuning_cfg(backbone))


def _inputs(n=3, seed=9):
    return torch.randn(
        n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


# three tasks each, branching at different units (and a head-only task)
CASES = [
    (RESNET, [['layer4.1'], ['layer2.0'], ['layer3.1', 'layer4.0']]),
    (dict(RESNET, out_indices=(1, 3)), [['layer4.1'], ['layer1.0'], []]),
    (VIT, [['layers.2'], ['layers.0'], ['cls_token', 'layers.1']]),
    (dict(VIT, out_type='avg_featmap'), [['ln2'], ['layers.1'],
                                         ['patch_embed']]),
]


@pytest.mark.parametrize('backbone,sets', CASES)
def test_batch_branches_equal_the_separate_models(backbone, sets):
    models = make_subtuning_tasks(_cfg(backbone), sets, seed=1)
    multi = MultiTaskSubTuning(models, batch_branches=True)
    assert len(set(multi.branch_points)) == 3
    x = _inputs()
    with torch.inference_mode():
        out = multi(x)
        feats = multi.features(x)
        plain = multi.features(x, batch_branches=False)
        for i, model in enumerate(models):
            name = f'task{i}'
            torch.testing.assert_close(out[name], model(x), atol=1e-6, rtol=0)
            want = model.backbone(x)
            assert len(feats[name]) == len(plain[name]) == len(want)
            for got, ref in zip(feats[name], want):
                torch.testing.assert_close(got, ref, atol=1e-6, rtol=0)
    # the tasks really differ
    assert not torch.allclose(out['task0'], out['task1'])


def test_batch_branches_run_each_frozen_unit_once():
    sets = [['layer4.1'], ['layer2.0'], ['layer3.1']]
    models = make_subtuning_tasks(_cfg(RESNET), sets, seed=1)
    multi = MultiTaskSubTuning(models, batch_branches=True)
    # units: stem, layer1.0 ... layer4.1
    assert multi.branch_points == [8, 3, 6]
    batches = {}
    for name in ('conv1', 'layer2.1', 'layer4.0', 'layer4.1'):
        multi.trunk.get_submodule(name).register_forward_hook(
            lambda m, a, o, n=name: batches.setdefault(n, []).append(a[0].
                                                                     shape[0]))
    with torch.inference_mode():
        multi(_inputs(n=2))
    # stem: the prefix alone; layer2.1: prefix + task1; layer4.0: prefix
    # (task0 has not branched yet) + task1 + task2 in one batch; layer4.1:
    # task1 + task2 (task0 runs its own copy)
    assert batches == {
        'conv1': [2],
        'layer2.1': [4],
        'layer4.0': [6],
        'layer4.1': [4]
    }
    batches.clear()
    with torch.inference_mode():
        multi.features(_inputs(n=2), batch_branches=False)
    assert batches['layer4.0'] == [2, 2, 2] and batches['layer2.1'] == [2, 2]


def test_merged_state_dict_leaves_out_unused_trunk_blocks(tmp_path):
    # every task tunes layer4.1: the trunk's copy is never run
    sets = [['layer4.1'], ['layer4.1', 'layer2.0'], ['layer4']]
    models = make_subtuning_tasks(_cfg(RESNET), sets, seed=1)
    multi = MultiTaskSubTuning(models)
    unused = multi.unused_trunk_keys()
    assert unused and all(k.startswith('trunk.layer4.1.') for k in unused)
    merged = multi.merged_state_dict()
    assert not set(unused) & set(merged)
    assert 'trunk.layer4.0.conv1.weight' in merged  # frozen for tasks 0, 1
    assert 'branches.1.blocks.layer2-0.conv1.weight' in merged
    assert 'branches.2.blocks.layer4.1.conv1.weight' in merged
    # a plain file is no merged checkpoint
    path = str(tmp_path / 'plain.pth')
    torch.save(dict(state_dict=merged), path)
    with pytest.raises(ValueError, match='not a merged multi-task'):
        MultiTaskSubTuning.from_checkpoint(path)


def test_check_trunk_can_be_turned_off():
    models = make_subtuning_tasks(_cfg(RESNET), [['layer4.1'], ['layer4.1']])
    with torch.no_grad():
        models[1].backbone.layer1[0].conv1.weight.add_(1.)
    with pytest.raises(ValueError, match='backbone.layer1.0.conv1.weight'):
        MultiTaskSubTuning(models)
    multi = MultiTaskSubTuning(models, check_trunk=False)
    # the trunk is the first task's backbone as built
    torch.testing.assert_close(multi.trunk.layer1[0].conv1.weight,
                               models[0].backbone.layer1[0].conv1.weight)


def test_siamese_tasks_are_refused():
    cfg = _cfg(RESNET)['model']
    cfg['head']['in_channels'] = 128
    siamese = MODELS.build(
        dict(cfg, trainable_blocks=['layer4.1'], siamese=True))
    with pytest.raises(ValueError, match=r'tasks\[0\] is Siamese'):
        MultiTaskSubTuning([siamese])
