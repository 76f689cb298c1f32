# Copyright (c) mmssl contributors. All rights reserved.
"""DenseCL resumes exactly: 2 epochs + resume to 4 equals 4 straight,
weights, key encoder and both queues included."""
from mmssl.testing import (assert_resume_equals_straight,
                           tiny_pretrain_runner_cfg, two_view_transform,
                           write_random_images)
from mmssl.testing.densecl import tiny_densecl_cfg


def test_densecl_resume_equals_straight_run(tmp_path):
    data = tmp_path / 'imgs'
    data.mkdir()
    write_random_images(str(data), num=16, size=72)

    def make_cfg(work_dir, max_epochs, resume_from):
        return tiny_pretrain_runner_cfg(
            tiny_densecl_cfg(queue_len=16),
            work_dir,
            str(data),
            max_epochs,
            img_size=64,
            extra_transforms=[two_view_transform(64)],
            # lambda switches from 0 to 0.5 at iteration 10, after the resume
            custom_hooks=[
                dict(type='mmssl.DenseCLWarmupHook', start_iters=10)
            ],
            resume_from=resume_from)

    straight, _, raw = assert_resume_equals_straight(make_cfg, str(tmp_path))
    for k in ('queue', 'queue2', 'queue_ptr', 'queue2_ptr', 'encoder_k.steps'):
        assert k in straight
    assert int(straight['encoder_k.steps']) == 16  # one update per step
    two = raw['state_dict']
    # epochs 3-4 moved everything (the key encoder by 0.1 % per step)
    for k, moved in (('queue', 1e-2), ('queue2',
                                       1e-2), ('backbone.conv1.weight', 1e-4),
                     ('encoder_k.module.0.conv1.weight', 1e-6)):
        assert (two[k].float() - straight[k].float()).abs().max() > moved, k
