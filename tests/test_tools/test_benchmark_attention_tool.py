# Copyright (c) mmssl contributors. All rights reserved.
"""tools/analysis_tools/benchmark_attention.py: its table, JSON and errors."""
import json

import pytest


def test_the_tool(load_tool_module, tmp_path, capsys):
    tool = load_tool_module('analysis_tools/benchmark_attention.py')
    out = tmp_path / 'attn.json'
    res = tool.main([
        '1,2,6,4', '--backends', 'default', 'math', '--iters', '1', '--repeat',
        '1', '--threads', '1', '--out',
        str(out)
    ])
    assert len(res) == 4  # 1 shape x 2 dtypes x 2 backends
    text = capsys.readouterr().out
    assert '(1, 2, 6, 4) bfloat16 math' in text
    assert json.loads(out.read_text())['results'][0]['dtype'] == 'float32'
    with pytest.raises(SystemExit):
        tool.parse_args(['1,2,6'])
    assert 'B,H,N,d' in capsys.readouterr().err
