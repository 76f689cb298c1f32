# Copyright (c) mmssl contributors. All rights reserved.
"""SimCLR resumes exactly: 2 epochs + resume to 4 equals 4 straight."""
from mmssl.testing import (assert_resume_equals_straight,
                           tiny_pretrain_runner_cfg, tiny_simclr_cfg,
                           two_view_transform, write_random_images)


def test_simclr_resume_equals_straight_run(tmp_path):
    data = tmp_path / 'imgs'
    data.mkdir()
    write_random_images(str(data), num=16, size=40)

    def make_cfg(work_dir, max_epochs, resume_from):
        return tiny_pretrain_runner_cfg(
            tiny_simclr_cfg(),
            work_dir,
            str(data),
            max_epochs,
            extra_transforms=[two_view_transform(32)],
            resume_from=resume_from)

    assert_resume_equals_straight(make_cfg, str(tmp_path))
