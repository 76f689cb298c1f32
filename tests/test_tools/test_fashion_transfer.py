# Copyright (c) mmssl contributors. All rights reserved.
"""tools/fashion_transfer.py with tiny random checkpoints."""
import os
import os.path as osp
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from mmssl.testing.checkpoints import save_as_backbone

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from difffashion_helpers import build_tiny, tiny_ddpm_cfg, tiny_vit_cfg


@pytest.fixture(scope='module')
def tool(load_tool_module):
    return load_tool_module('fashion_transfer.py')


@pytest.fixture
def files(tmp_path):
    ddpm, vit = build_tiny(16)
    with open(tmp_path / 'ddpm.py', 'w') as f:
        f.write(f'model = {tiny_ddpm_cfg(16)!r}\n')
    with open(tmp_path / 'vit.py', 'w') as f:
        f.write(f'model = dict(backbone={tiny_vit_cfg(16)!r})\n')
    torch.save(dict(state_dict=ddpm.state_dict()), tmp_path / 'ddpm.pth')
    save_as_backbone(vit, str(tmp_path / 'vit.pth'))
    rng = np.random.RandomState(0)
    garment = np.full((40, 40, 3), 230, np.uint8)
    garment[8:32, 10:30] = (40, 60, 200)
    Image.fromarray(garment).save(tmp_path / 'garment.png')
    Image.fromarray(rng.randint(0, 255, (24, 30, 3),
                                np.uint8)).save(tmp_path / 'reference.png')
    return tmp_path


def _args(d, out, *extra):
    return [
        '--garment',
        str(d / 'garment.png'), '--reference',
        str(d / 'reference.png'), '--out',
        str(out), '--config',
        str(d / 'ddpm.py'), '--checkpoint',
        str(d / 'ddpm.pth'), '--vit-config',
        str(d / 'vit.py'), '--vit-checkpoint',
        str(d / 'vit.pth'), '--steps', '5', '--resample', '1',
        '--garment-label', '0', '--mask-labels', '1,2;3', *extra
    ]


def test_cli_writes_result_mask_and_grid(tool, files, capsys):
    out = files / 'out'
    assert tool.main(_args(files, out)) == 0
    names = sorted(os.listdir(out))
    assert names == ['grid.png', 'mask.png', 'result.png']
    assert Image.open(out / 'result.png').size == (16, 16)
    assert Image.open(out / 'grid.png').size == (4 * 16 + 3 * 2, 16)
    mask = np.asarray(Image.open(out / 'mask.png'))
    assert set(np.unique(mask)) <= {0, 255}
    assert 'wrote' in capsys.readouterr().out
    # DDIM, no mask, guidance weights from the command line
    out2 = files / 'out2'
    assert tool.main(
        _args(files, out2, '--sampler', 'ddim', '--no-mask', '--no-clip-x0',
              '--weights', 'l2=0', 'contra=0', '--metrics', '--true-mask',
              str(files / 'garment.png'))) == 0
    assert len(os.listdir(out2)) == 4
    import json
    metrics = json.load(open(out2 / 'metrics.json'))
    assert metrics['weights'] == dict(l2=0.0, contra=0.0)
    assert metrics['structure_selfsim'] >= 0 and metrics['mask_fraction'] == 1
    assert 0 < metrics['mask_iou'] < 1 and metrics['background_l1'] > 0


def test_cli_errors_write_nothing(tool, files, capsys):
    out = files / 'bad'
    args = _args(files, out)
    args[args.index('--checkpoint') + 1] = str(files / 'missing.pth')
    assert tool.main(args) == 2
    err = capsys.readouterr().err
    assert 'missing.pth' in err and 'tools/train.py' in err
    assert not out.exists()
    (files / 'text.png').write_text('no image')
    args = _args(files, out)
    args[args.index('--garment') + 1] = str(files / 'text.png')
    assert tool.main(args) == 2
    assert 'not a readable image' in capsys.readouterr().err
    assert not out.exists()
    assert tool.main(_args(files, out, '--mask-threshold', '100')) == 2
    assert 'mask is empty' in capsys.readouterr().err
    assert not out.exists()


def test_cli_per_set_mode_and_mask_options(tool, files):
    out = files / 'per_set'
    assert tool.main(
        _args(files, out, '--mask-mode', 'per_set', '--mask-draws', '2',
              '--mask-source', 'noised', '--mask-contrast', 'per_label',
              '--mask-threshold', '-1')) == 0
    names = sorted(os.listdir(out))
    assert names == [
        'grid.png', 'mask.png', 'mask_set0.png', 'mask_set1.png', 'result.png',
        'result_set0.png', 'result_set1.png'
    ]
    # one grid row per label set ("1,2;3")
    assert Image.open(out / 'grid.png').size == (4 * 16 + 3 * 2, 2 * 16 + 2)
    assert np.array_equal(
        np.asarray(Image.open(out / 'mask.png')),
        np.asarray(Image.open(out / 'mask_set0.png')))


def test_cli_user_errors_are_one_line_and_early(tool, files, capsys,
                                                monkeypatch):
    # unknown guidance weights: refused before any model is loaded (the
    # diffusion checkpoint named here does not even exist)
    args = _args(files, files / 'w', '--weights', 'style=1')
    args[args.index('--checkpoint') + 1] = str(files / 'missing.pth')
    assert tool.main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith('error: --weights') and 'style' in err
    assert 'Traceback' not in err and err.count('\n') == 1
    assert tool.main(_args(files, files / 'w', '--weights', 'l2=x')) == 2
    assert 'not a number' in capsys.readouterr().err
    # --out naming a file
    (files / 'taken').write_text('x')
    assert tool.main(_args(files, files / 'taken')) == 2
    err = capsys.readouterr().err
    assert 'is a file' in err and err.count('\n') == 1
    # --device cuda without CUDA
    import torch
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    assert tool.main(_args(files, files / 'd', '--device', 'cuda')) == 2
    assert 'CUDA is not available' in capsys.readouterr().err
    monkeypatch.undo()
    assert tool.main(_args(files, files / 'd', '--device', 'tpu9')) == 2
    assert '--device' in capsys.readouterr().err
    # no --vit-config: the default ViT-B/8 does not fit the tiny ViT's
    # weights; one line that names the fix
    args = _args(files, files / 'v')
    i = args.index('--vit-config')
    del args[i:i + 2]
    assert tool.main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith('error: ') and '--vit-config' in err
    assert 'Traceback' not in err and err.count('\n') == 1
    # --mask-labels that are not numbers
    assert tool.main(_args(files, files / 'm', '--mask-labels', 'a;b')) == 2
    assert '--mask-labels' in capsys.readouterr().err
    for name in ('w', 'd', 'v', 'm'):
        assert not (files / name).exists()
