# Copyright (c) mmssl contributors. All rights reserved.
"""Describe the environment: versions, devices, whether mmcv's ops work.

``python tools/misc/check_env.py`` prints it.
"""
from collections import OrderedDict
from importlib import metadata


def collect_env() -> 'OrderedDict[str, str]':
    """Versions of the stack, CUDA status and an mmcv-ops smoke test."""
    from mmengine.utils.dl_utils import collect_env as mmengine_env
    env = mmengine_env()
    for name in ('mmcv', 'mmcv-lite', 'mmengine', 'mmpretrain', 'mmdet',
                 'mmsegmentation', 'diffusers', 'open_clip_torch', 'numpy',
                 'opencv-python'):
        try:
            env[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    try:
        import torch
        from mmcv.ops import nms
        boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.]])
        _, keep = nms(boxes, torch.tensor([0.9, 0.8]), 0.5)
        env['mmcv ops'] = f'ok (nms kept {keep.tolist()})'
    except Exception as err:  # noqa: BLE001 - report, never raise
        env['mmcv ops'] = f'NOT AVAILABLE: {err!r}'
    import mmssl
    env['mmssl'] = mmssl.__version__
    return env
