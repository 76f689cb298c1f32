# Copyright (c) mmssl contributors. All rights reserved.
"""guided-diffusion (ADM) UNet checkpoint -> diffusers ``UNet2DModel``.

    python tools/model_converters/guided_diffusion_to_diffusers.py \
        256x256_diffusion.pt OUT.pth [--arch imagenet256-cond]

The class-conditional ImageNet 256 model of openai/guided-diffusion
(https://openaipublic.blob.core.windows.net/diffusion/jul-2021/256x256_diffusion.pt,
listed under "Download pre-trained models" in
https://github.com/openai/guided-diffusion) is the denoiser of DiffFashion.
The output is an mmssl checkpoint of ``mmssl.ClassCondDDPM``
(``{'meta': {..., 'model_cfg': ...}, 'state_dict': {'unet.<key>': ...}}``,
diffusers keys) whose ``meta['model_cfg']`` is the config dict to build the
model with.

The key layout and the shapes it checks are in
:mod:`mmssl.converters.guided_diffusion`.
"""
import argparse
import os.path as osp
import sys
from collections import OrderedDict
from typing import Sequence

import mmssl  # noqa: F401  (safe weights-only checkpoint loader)
from mmssl.converters.guided_diffusion import (ARCHS, GD_URL,
                                               classcond_ddpm_cfg,
                                               convert_guided_diffusion)
from mmssl.engine.tool_errors import ToolError, tool_main


@tool_main
def main(argv: Sequence[str] = None) -> int:
    parser = argparse.ArgumentParser(
        description='Convert a guided-diffusion UNet to diffusers.')
    parser.add_argument('src', help='guided-diffusion checkpoint (.pt)')
    parser.add_argument('dst', help='output mmssl ClassCondDDPM checkpoint')
    parser.add_argument(
        '--arch', default='imagenet256-cond', help=f'one of {sorted(ARCHS)}')
    args = parser.parse_args(argv)
    if args.arch not in ARCHS:
        raise ToolError(f'unknown --arch {args.arch!r}; known: '
                        f'{sorted(ARCHS)}')
    if not osp.isfile(args.src):
        raise ToolError(
            f'checkpoint file {args.src!r} does not exist. Download it from '
            f'{GD_URL} (see "Download pre-trained models" in '
            'https://github.com/openai/guided-diffusion).')
    from mmssl.utils import atomic_save_checkpoint, safe_torch_load
    cfg = ARCHS[args.arch]
    sd = safe_torch_load(args.src, map_location='cpu')
    if not isinstance(sd, dict):
        raise ToolError(f'{args.src} holds a {type(sd).__name__}, not a '
                        'state dict of the guided-diffusion UNet')
    sd = sd.get('state_dict', sd)
    try:
        state = convert_guided_diffusion(sd, cfg)
    except KeyError as err:
        raise ToolError(f'{args.src}: {err.args[0]}') from err
    model_cfg = classcond_ddpm_cfg(cfg)
    meta = dict(
        source=osp.basename(args.src),
        arch=args.arch,
        converted_by='tools/model_converters/'
        'guided_diffusion_to_diffusers.py',
        model_cfg=model_cfg)
    state = OrderedDict((f'unet.{k}', v.float()) for k, v in state.items())
    atomic_save_checkpoint(dict(meta=meta, state_dict=state), args.dst)
    print(f'converted {len(state)} tensors -> {args.dst}\n'
          f'model config: {model_cfg}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
