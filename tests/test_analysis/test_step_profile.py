# Copyright (c) mmssl contributors. All rights reserved.
"""The training-step profiler: families, phases, the tool."""
import pytest

from mmssl.analysis.step_profile import (PHASES, format_profile, op_family,
                                         profile_train_step)

MAE_TINY = 'configs/mae/mae_vit-tiny-p8_1xb64-coslr-30e_embedded.py'


@pytest.mark.parametrize('name,family', [
    ('aten::addmm', 'matmul'),
    ('aten::mm', 'matmul'),
    ('sm90_xmma_gemm_bf16bf16_bf16f32', 'matmul'),
    ('aten::_scaled_dot_product_flash_attention_for_cpu', 'attention'),
    ('aten::_softmax', 'attention'),
    ('aten::_fused_adamw_', 'optimizer'),
    ('aten::_foreach_mul_', 'optimizer'),
    ('aten::native_layer_norm_backward', 'norm'),
    ('aten::gelu_backward', 'activation'),
    ('aten::copy_', 'copy / cast'),
    ('aten::add_', 'elementwise'),
    ('aten::nonsense', 'other'),
])
def test_op_family(name, family):
    assert op_family(name) == family


def test_profile_of_a_tiny_mae_step():
    res = profile_train_step(
        MAE_TINY, batch_size=2, steps=1, warmup=1, threads=1, top=5)
    assert res['time_kind'] == 'cpu' and res['batch_size'] == 2
    assert abs(sum(res['families'].values()) - 100.) < 1e-6
    assert res['families']['matmul'] > 10.
    pcts = [r['pct'] for r in res['ops']]
    assert len(pcts) == 5 and pcts == sorted(pcts, reverse=True)
    assert set(res['phase_ms']) == set(PHASES)
    assert all(v > 0 for v in res['phase_ms'].values())
    text = '\n'.join(format_profile(res))
    assert 'families: matmul' in text or 'matmul' in text.splitlines()[1]
