# Copyright (c) mmssl contributors. All rights reserved.
"""tools/analysis_tools/profile_train_step.py."""
import json
import os.path as osp

MAE_TINY = 'configs/mae/mae_vit-tiny-p8_1xb64-coslr-30e_embedded.py'


def test_tool_writes_json(tmp_path, load_tool_module):
    main = load_tool_module('analysis_tools/profile_train_step.py').main
    out = osp.join(tmp_path, 'p.json')
    main([
        MAE_TINY, '--steps', '1', '--warmup', '0', '--threads', '1', '--top',
        '3', '--out', out, '--cfg-options', 'train_dataloader.batch_size=2'
    ])
    with open(out) as f:
        payload = json.load(f)
    assert len(payload['ops']) == 3 and payload['batch_size'] == 2
