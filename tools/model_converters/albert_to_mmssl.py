# Copyright (c) mmssl contributors. All rights reserved.
"""Convert a public ALBERT checkpoint to mmssl's AlbertPretrainer keys.

    python tools/model_converters/albert_to_mmssl.py SRC DST \
        [--layout auto|hf|tf] [--config CONFIG.json] [--vocab-size N]

SRC is a HuggingFace ``pytorch_model.bin`` / ``.pth`` / ``.safetensors``
state dict, or an ``.npz`` of the TF variables of google-research/albert
(export them once where TensorFlow is installed: ``r =
tf.train.load_checkpoint(ckpt); np.savez('albert.npz', **{n: r.get_tensor(n)
for n, _ in tf.train.list_variables(ckpt)})``). The output ``{'meta': ...,
'state_dict': ...}`` loads into ``mmssl.AlbertPretrainer`` (and its
``backbone.`` part into ``mmssl.TextClassifier`` through
``init_cfg=dict(type='Pretrained', checkpoint=DST, prefix='backbone.')``).
With ``--config`` (the checkpoint's ``config.json`` or
``albert_config.json``), ``meta['backbone']`` holds the matching
``mmssl.AlbertEncoder`` config. The key table is in
:mod:`mmssl.converters.albert`. Exit status 0 on success, 2 on bad input
(``error: ...`` on stderr).
"""
import argparse
import json
import os.path as osp
import sys

import mmssl  # noqa: F401  (safe weights-only checkpoint loader)
from mmssl.converters.albert import convert_albert, encoder_config_from_json
from mmssl.converters.checkpoint import ConversionError
from mmssl.engine.tool_errors import ToolError, tool_main


def _read(path: str) -> dict:
    if path.endswith('.npz'):
        import numpy as np
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    if path.endswith('.safetensors'):
        try:
            from safetensors.torch import load_file
        except ImportError as err:
            raise ToolError(f'{path}: reading .safetensors needs the '
                            'safetensors package') from err
        return load_file(path)
    from mmssl.utils.checkpoint import safe_torch_load
    checkpoint = safe_torch_load(path, map_location='cpu')
    for key in ('state_dict', 'model'):
        if isinstance(checkpoint, dict) and isinstance(
                checkpoint.get(key), dict):
            return checkpoint[key]
    if not isinstance(checkpoint, dict):
        raise ToolError(f'{path} holds a {type(checkpoint).__name__}, not '
                        'a state dict')
    return checkpoint


@tool_main
def main(argv=None):
    parser = argparse.ArgumentParser(
        description='Convert a HuggingFace or google-research/albert '
        'checkpoint to mmssl.AlbertPretrainer keys.')
    parser.add_argument(
        'src',
        help='state dict (.bin/.pth/.safetensors) or '
        '.npz of TF variables')
    parser.add_argument('dst', help='output checkpoint path')
    parser.add_argument(
        '--layout', default='auto', choices=['auto', 'hf', 'tf'])
    parser.add_argument(
        '--config',
        help="the checkpoint's config.json / "
        'albert_config.json (for meta.backbone)')
    parser.add_argument(
        '--vocab-size',
        type=int,
        help='the tokenizer\'s '
        'vocabulary size, checked against the checkpoint')
    args = parser.parse_args(argv)

    from mmssl.utils import atomic_save_checkpoint
    from mmssl.version import __version__

    if not osp.isfile(args.src):
        raise ToolError(f'checkpoint file {args.src!r} does not exist')
    try:
        converted = convert_albert(
            _read(args.src), args.layout, vocab_size=args.vocab_size)
        backbone = None
        if args.config:
            if not osp.isfile(args.config):
                raise ToolError(f'config file {args.config!r} does not exist')
            with open(args.config) as f:
                backbone = encoder_config_from_json(
                    json.load(f), converted.sizes)
    except ConversionError as err:
        raise ToolError(f'{args.src}: {err}') from err
    meta = dict(
        source=osp.abspath(args.src),
        source_layout=converted.layout,
        sizes=converted.sizes,
        backbone=backbone,
        converted_by='tools/model_converters/albert_to_mmssl.py',
        mmssl_version=__version__)
    atomic_save_checkpoint(
        dict(meta=meta, state_dict=converted.state_dict), args.dst)
    parts = sorted({k.split('.', 1)[0] for k in converted.state_dict})
    print(f'converted {len(converted.state_dict)} weights '
          f'({", ".join(parts)}); saved to {args.dst}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
