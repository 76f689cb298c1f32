# Copyright (c) mmssl contributors. All rights reserved.
"""2 gloo processes == 1 process for NT-Xent with mmssl's gather; the
naive gather and mmpretrain's ``GatherLayer`` fail the same check."""
import pytest
import torch

from mmssl.models.utils.dist import (all_gather_with_grad, concat_all_gather,
                                     concat_all_gather_with_grad)
from mmssl.testing.contrastive import (ntxent_linear_step,
                                       ntxent_linear_step_mmpretrain_gather,
                                       ntxent_linear_step_naive_gather)
from mmssl.testing.dist import (assert_matches_single_process,
                                run_single_and_distributed, split_batch)


def _batch(n=8, d=6):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)


def test_single_process_gathers_are_identity():
    x = torch.randn(3, 2, requires_grad=True)
    assert all_gather_with_grad(x)[0] is x
    assert concat_all_gather_with_grad(x) is x
    assert not concat_all_gather(x).requires_grad
    with pytest.raises(ValueError, match='divisible'):
        split_batch(_batch(n=5), 2, 0)


def test_a_one_process_group_does_not_gather(tmp_path):
    """A process group of one (e.g. a one-GPU ``dist_train.sh``) takes the
    single-process path: no copy, no collective."""
    import torch.distributed as torch_dist
    torch_dist.init_process_group(
        'gloo', init_method=f'file://{tmp_path}/store', rank=0, world_size=1)
    try:
        x = torch.randn(3, 2, requires_grad=True)
        assert all_gather_with_grad(x)[0] is x
        assert concat_all_gather_with_grad(x) is x
        gathered = concat_all_gather(x)
        assert gathered.data_ptr() == x.data_ptr()
        assert not gathered.requires_grad
    finally:
        torch_dist.destroy_process_group()


def _concat_gathers(x):
    """Both concatenating gathers and the gradient of a weighted sum of
    the differentiable one, placed at this rank's rows."""
    from mmengine.dist import get_rank, get_world_size
    x = x.clone().requires_grad_()
    full = concat_all_gather_with_grad(x)  # (W n, d)
    weights = torch.arange(full.numel(), dtype=x.dtype).view_as(full)
    (full * weights).sum().backward()
    n, rank = x.shape[0], get_rank()
    grad = torch.zeros(get_world_size() * n, *x.shape[1:])
    grad[rank * n:(rank + 1) * n] = x.grad
    return dict(full=full, no_grad=concat_all_gather(x), grad=grad)


def test_concatenating_gathers_are_rank_major():
    """2 processes: both gathers give the (W n, d) batch in rank order
    (the same tensor as one process), and the gradient sent back to each
    rank is the sum over the W ranks' losses: W times its rows of the
    weights, which the rank average of the placed rows turns back into the
    single-process gradient."""
    x = torch.arange(24.).view(8, 3)
    single, multi = run_single_and_distributed(_concat_gathers, (x, ))
    for k in ('full', 'no_grad', 'grad'):
        assert multi[k].shape == single[k].shape == (8, 3), k
    torch.testing.assert_close(multi['full'], x.double())
    torch.testing.assert_close(multi['no_grad'], x.double())
    weights = torch.arange(24.).view(8, 3).double()
    torch.testing.assert_close(single['grad'], weights)
    torch.testing.assert_close(multi['grad'], weights)


def test_two_processes_match_one():
    assert_matches_single_process(ntxent_linear_step, _batch(), atol=1e-5)


def test_naive_gather_fails_the_check():
    batch = _batch()
    with pytest.raises(AssertionError, match='differ'):
        assert_matches_single_process(
            ntxent_linear_step_naive_gather, batch, atol=1e-5)
    single, multi = run_single_and_distributed(ntxent_linear_step_naive_gather,
                                               batch)
    # the loss value is right, its gradient is not
    assert abs(single['loss'] - multi['loss']).item() < 1e-6
    assert (single['weight'] - multi['weight']).abs().max() > 1e-3


def test_mmpretrain_gather_layer_halves_the_gradient():
    single, multi = run_single_and_distributed(
        ntxent_linear_step_mmpretrain_gather, _batch())
    torch.testing.assert_close(multi['loss'], single['loss'])
    # GatherLayer.backward keeps the local slice only: with every rank
    # computing the full loss, DDP's average gives grad / world_size
    for k in ('weight', 'bias'):
        torch.testing.assert_close(multi[k], single[k] / 2, atol=1e-6, rtol=0)
        assert (multi[k] - single[k]).abs().max() > 1e-3


def test_simclr_model_two_processes_match_one():
    """The whole mmssl.SimCLR (GN, so nothing else depends on the split)."""
    from mmssl.testing.contrastive import simclr_model_step
    g = torch.Generator().manual_seed(0)
    x1, x2 = (torch.randn(4, 3, 32, 32, generator=g) for _ in range(2))
    single, multi = run_single_and_distributed(simclr_model_step, (x1, x2))
    assert len(single) > 10
    assert max(v.abs().max() for k, v in single.items() if k != 'loss') > 1e-3
    for k in single:
        torch.testing.assert_close(
            multi[k], single[k], atol=1e-5, rtol=1e-4, msg=k)


_AFTER_COMPILED_BACKWARD = '''
import torch
from mmssl.testing.contrastive import ntxent_linear_step
from mmssl.testing.dist import (assert_matches_single_process,
                                fork_runs_autograd)
assert fork_runs_autograd()
x = torch.ones(3, requires_grad=True)
torch.compile(lambda t: t.sin().sum(), backend='aot_eager')(x).backward()
assert not fork_runs_autograd()
g = torch.Generator().manual_seed(0)
batch = torch.randn(8, 6, generator=g), torch.randn(8, 6, generator=g)
assert_matches_single_process(ntxent_linear_step, batch, atol=1e-5)
print('matched')
'''


def test_two_processes_after_a_compiled_backward():
    """A compiled backward makes torch refuse autograd in forked children;
    the helper sees it and spawns the processes instead (in a fresh
    interpreter, so this test leaves the pytest process as it was)."""
    import subprocess
    import sys
    out = subprocess.run([sys.executable, '-c', _AFTER_COMPILED_BACKWARD],
                         capture_output=True,
                         text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert 'matched' in out.stdout
