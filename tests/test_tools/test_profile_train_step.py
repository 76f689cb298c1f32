# Copyright (c) mmssl contributors. All rights reserved.
"""tools/analysis_tools/profile_train_step.py."""
import json
import os.path as osp

import pytest

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


def test_graph_breaks_of_mae_and_data2vec2(tmp_path, load_tool_module):
    """MAE's training forward is one graph, and so is data2vec 2.0's for
    images and text: their masks are drawn eagerly and the visible count
    reaches the encoder as a static size (the README's numbers); and
    ALBERT's, its input checks in-graph asserts; later steps reuse the
    graphs."""
    main = load_tool_module('analysis_tools/profile_train_step.py').main
    out = osp.join(tmp_path, 'g.json')
    mae = main([MAE_TINY, '--graph-breaks', '--out', out])
    assert (mae['graphs'], mae['breaks'], mae['recompiles']) == (1, 0, 0)
    with open(out) as f:
        assert json.load(f)['graphs'] == 1
    for cfg in ('data2vec2/data2vec2_vit-tiny-p8_1xb64-coslr-30e_embedded',
                'data2vec2_text/data2vec2-text_tiny_1xb8-adamw-120iter_'
                'embedded-text',
                'albert/albert_tiny_1xb32-lamb-20e_embedded-text'):
        d2v2 = main([f'configs/{cfg}.py', '--graph-breaks'])
        # and the next steps reuse it (a step counter on the model made
        # every step recompile the frame after the masks)
        assert (d2v2['graphs'], d2v2['breaks'], d2v2['recompiles'],
                d2v2['recompile_reasons']) == (1, 0, 0, []), cfg


def test_graph_breaks_trace_the_forward_compile_would_run(load_tool_module):
    """The trace prepares the model as ``compile=True`` does (the drop-path
    rates as Python floats), so a fine-tuned mmpretrain ViT does not report
    the per-block drop-path breaks that the compiled forward never has; a
    classifier config gets its labels (it stopped at ``gt_label`` before).
    """
    main = load_tool_module('analysis_tools/profile_train_step.py').main
    res = main([
        'configs/poslabel/vit-tiny-p8_1xb64-coslr-20e_embedded.py',
        '--graph-breaks'
    ])
    assert not [r for r in res['reasons'] if 'drop_path' in r['where']]
    # and its label-smoothing loss checks labels in the graph
    # (mmssl.LabelSmoothLoss; mmpretrain's reads them on the host: 8 graphs,
    # 7 breaks and a recompilation)
    assert (res['graphs'], res['breaks'], res['recompiles']) == (1, 0, 0)


def test_densecl_compiles_in_three_graphs(load_tool_module):
    """DenseCL's forward: the eager momentum update splits it once (two
    breaks around the disabled call: 3 graphs, the README's numbers), and
    the queue pointer, kept a tensor, causes no recompilation (9 graphs and
    a recompilation per step before)."""
    main = load_tool_module('analysis_tools/profile_train_step.py').main
    res = main([
        'configs/densecl/densecl_resnet18-tiny_1xb64-coslr-30e_embedded.py',
        '--graph-breaks'
    ])
    assert (res['graphs'], res['breaks'], res['recompiles']) == (3, 2, 0)


def test_a_config_needing_other_data_is_refused_clearly(load_tool_module):
    """Profiling and tracing a config whose step needs captions name the
    config and the missing field."""
    main = load_tool_module('analysis_tools/profile_train_step.py').main
    for extra in ([], ['--graph-breaks']):
        with pytest.raises(ValueError, match=r'clip_tiny.*caption'):
            main(['configs/clip/clip_tiny-rn_1xb32-12e_embedded.py'] + extra +
                 ['--steps', '2', '--warmup', '0'])
