# Copyright (c) mmssl contributors. All rights reserved.
"""tools/analysis_tools/dense_probe.py on a tiny segmentation folder."""
import json
import os
import os.path as osp

import mmcv
import numpy as np
import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SIMCLR = osp.join(REPO, 'configs', 'simclr',
                  'simclr_resnet18-tiny_1xb64-coslr-30e_embedded.py')


@pytest.fixture(scope='module')
def tool(load_tool_module):
    return load_tool_module('analysis_tools/dense_probe.py')


@pytest.fixture
def seg_root(tmp_path):
    rng = np.random.default_rng(0)
    for split, num in (('train', 6), ('val', 3)):
        os.makedirs(tmp_path / 'img_dir' / split)
        os.makedirs(tmp_path / 'ann_dir' / split)
        for i in range(num):
            label = np.zeros((32, 32), np.uint8)
            y, x = rng.integers(0, 16, 2)
            label[y:y + 16, x:x + 16] = 1 + i % 2
            img = np.stack([label * 100] * 3, -1).astype(np.uint8)
            mmcv.imwrite(img, str(tmp_path / 'img_dir' / split / f'{i}.png'))
            mmcv.imwrite(label, str(tmp_path / 'ann_dir' / split / f'{i}.png'))
    return tmp_path


def test_random_resnet_probe_all_stages(tool, seg_root, tmp_path, capsys):
    out = tmp_path / 'probe.json'
    show = tmp_path / 'probe.png'
    results = tool.main([
        SIMCLR, '--random', '--data-root',
        str(seg_root), '--iters', '3', '--grid', '8', '--out',
        str(out), '--show',
        str(show), '--show-num', '2'
    ])
    # 2 rows of 64-px cells (32 px x 2) and 1 gap; image, labels, random
    assert mmcv.imread(str(show)).shape == (2 * 64 + 2, 3 * 64 + 2 * 2, 3)
    assert 'predictions' not in json.loads(
        out.read_text())['results']['random']
    assert set(results) == {'random'}
    # all four stages of the half-width ResNet-18: 32 + 64 + 128 + 256
    assert results['random']['feature_dim'] == 480
    assert 0 <= results['random']['mIoU'] <= 100
    written = json.loads(out.read_text())
    assert written['settings']['num_classes'] == 3  # background + 2
    assert written['settings']['out_indices'] == [0, 1, 2, 3]
    assert 'random' in capsys.readouterr().out
    # --out-indices picks levels; the last stage alone is 256-d
    last = tool.main([
        SIMCLR, '--random', '--data-root',
        str(seg_root), '--iters', '1', '--grid', '4', '--out-indices', '-1'
    ])
    assert last['random']['feature_dim'] == 256


def test_bad_input_is_explained(tool, seg_root, tmp_path):
    with pytest.raises(tool.ToolError, match='img_dir/train'):
        tool.main([SIMCLR, '--random', '--data-root', str(tmp_path / 'no')])
    with pytest.raises(tool.ToolError, match='does not exist'):
        tool.main(
            [SIMCLR,
             str(tmp_path / 'no.pth'), '--data-root',
             str(seg_root)])
    with pytest.raises(tool.ToolError, match='out of range'):
        tool.main([
            SIMCLR, '--random', '--data-root',
            str(seg_root), '--out-indices', '4'
        ])
    with pytest.raises(SystemExit):
        tool.parse_args([SIMCLR])
