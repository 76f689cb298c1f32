# Copyright (c) mmssl contributors. All rights reserved.
"""The training-step benchmark: FLOP counts by hand, fields, twin configs.

No test asserts a speed: timings on a shared machine are not reproducible.
"""
import importlib.util
import json
import os.path as osp
import time

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmssl.analysis import (benchmark_configs, count_train_flops, machine_info,
                            measure_matmul_peak)

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
TINY = osp.join(ROOT,
                'configs/mae/mae_vit-tiny-p8_1xb64-coslr-30e_embedded.py')
TINY_REF = osp.join(
    ROOT, 'configs/mae/reference/mae-mmpretrain_vit-tiny-p8_1xb64_embedded.py')


def time_once(paths):
    """One 1-step window per config, batch 2, one thread (a smoke timing)."""
    return benchmark_configs(
        paths,
        batch_size=2,
        iters=1,
        warmup=1,
        repeat=1,
        threads=1,
        matmul_size=128)


def test_linear_flops_match_hand_count():
    batch, c_in, c_out = 4, 6, 5
    layer = nn.Linear(c_in, c_out)
    forward = 2 * batch * c_in * c_out
    # an input that needs a gradient: forward + weight grad + input grad
    x = torch.randn(batch, c_in, requires_grad=True)
    assert count_train_flops(layer, x) == 3 * forward
    assert all(p.grad is None for p in layer.parameters())
    # the first layer of a network: no input gradient is computed
    assert count_train_flops(layer, torch.randn(batch, c_in)) == 2 * forward


@pytest.mark.parametrize('groups', [1, 4, 16])
@pytest.mark.parametrize('dims', [1, 2])
def test_grouped_conv_flops_match_hand_count(groups, dims):
    """A (grouped) convolution's training step is three times its forward:
    forward, input gradient, weight gradient, each ``2 * B * out positions
    * C_out * C_in / groups * kernel`` (torch's formula counted the weight
    gradient ``groups`` times)."""
    batch, c, k, size = 2, 32, 3, 6
    conv = (nn.Conv1d if dims == 1 else nn.Conv2d)(
        c, c, k, padding=1, groups=groups, bias=False)
    positions = size**dims
    forward = 2 * batch * positions * c * (c // groups) * k**dims
    x = torch.randn(batch, c, *([size] * dims), requires_grad=True)
    assert count_train_flops(conv, x) == 3 * forward
    # no input gradient for the first layer
    x = torch.randn(batch, c, *([size] * dims))
    assert count_train_flops(conv, x) == 2 * forward


def test_cpu_attention_flops_are_counted():
    b, h, n, d = 2, 3, 5, 4

    class Attention(nn.Module):

        def forward(self, q):
            return F.scaled_dot_product_attention(q, q, q)

    q = torch.randn(b, h, n, d, requires_grad=True)
    bmm = 2 * b * h * n * n * d  # one (n, d) @ (d, n) product per head
    # forward: q k^T and p v; backward: recompute q k^T, grad p, grad v,
    # grad q, grad k
    assert count_train_flops(Attention(), q) == 7 * bmm


def test_matmul_peak_positive():
    assert measure_matmul_peak('cpu', n=64, repeats=2, threads=1) > 0


def test_machine_info_fields():
    info = machine_info('cpu')
    for key in ('cpu', 'cpu_count', 'torch_threads', 'torch', 'device'):
        assert key in info
    json.dumps(info)


def test_benchmark_twin_configs():
    results = benchmark_configs([TINY, TINY_REF],
                                names=['mmssl', 'mmpretrain'],
                                batch_size=4,
                                iters=2,
                                warmup=1,
                                repeat=1,
                                threads=1,
                                matmul_size=128)
    assert [r['name'] for r in results] == ['mmssl', 'mmpretrain']
    for res in results:
        for key in ('img_per_s', 's_per_iter', 'flops_per_img', 'model_gflops',
                    'matmul_peak_gflops', 'pct_of_peak', 'state_mib',
                    'num_params'):
            assert res[key] > 0, key
        assert res['peak_mem_mib'] >= res['state_mib']
        assert res['batch_size'] == 4 and res['img_size'] == [64, 64]
        assert res['threads'] == 1 and not res['amp']
        assert len(res['img_per_s_windows']) == 1
        assert res['loss'] == res['loss']  # finite, not NaN
        json.dumps(res)
    assert results[0]['ratio'] == 1.0
    # the same network (the same parameters); mmssl embeds the visible
    # patches and decodes the removed ones only: fewer FLOPs
    assert results[0]['num_params'] == results[1]['num_params']
    assert results[0]['flops_per_img'] < 0.97 * results[1]['flops_per_img']


def test_minor_page_faults_count_fresh_pages():
    """Touching a fresh anonymous mapping faults its pages in."""
    import mmap

    from mmssl.analysis.benchmark import minor_page_faults
    before = minor_page_faults()
    buf = mmap.mmap(-1, 8 << 20)
    for i in range(0, 8 << 20, 4096):
        buf[i] = 1
    after = minor_page_faults()
    buf.close()
    assert after - before >= 1


def test_minor_page_faults_without_resource(monkeypatch):
    """0 where the resource module is missing (Windows)."""
    import sys

    from mmssl.analysis.benchmark import minor_page_faults
    monkeypatch.setitem(sys.modules, 'resource', None)
    assert minor_page_faults() == 0


def test_faults_per_step_are_window_differences(monkeypatch):
    """Each timed window adds the counter's growth across it; the result
    is that total over all timed steps."""
    import itertools

    from mmssl.analysis import benchmark as bench
    counter = itertools.count(step=10)
    monkeypatch.setattr(bench, 'minor_page_faults', lambda: next(counter))
    res = benchmark_configs([TINY],
                            batch_size=2,
                            iters=2,
                            warmup=0,
                            repeat=3,
                            threads=1,
                            matmul_size=64)
    assert res[0]['faults_per_step'] == 10 * 3 / (3 * 2)


def test_benchmark_rejects_bad_arguments():
    with pytest.raises(ValueError):
        benchmark_configs([TINY], iters=0)
    with pytest.raises(ValueError):
        benchmark_configs([TINY], names=['a', 'b'])


def test_tool_cli(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location(
        'benchmark_train',
        osp.join(ROOT, 'tools/analysis_tools/benchmark_train.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    out = tmp_path / 'bench.json'
    tool.main([
        TINY, '--batch-size', '2', '--iters', '1', '--warmup', '0', '--repeat',
        '1', '--threads', '1', '--matmul-size', '64', '--out',
        str(out), '--cfg-options', 'model.backbone.mask_ratio=0.5', '--malloc',
        'default'
    ])
    text = capsys.readouterr().out
    assert 'GFLOPs/img' in text and 'in the given order' in text
    assert 'minor page faults per step: ' in text
    payload = json.loads(out.read_text())
    assert payload['results'][0]['faults_per_step'] >= 0
    assert payload['machine']['malloc'] == 'default' or \
        payload['machine']['malloc'].startswith('set by the environment')
    assert payload['machine']['torch_threads'] == 1
    assert payload['args']['batch_size'] == 2
    assert payload['results'][0]['name'] == osp.splitext(osp.basename(TINY))[0]
    assert payload['results'][0]['paired_ratio'] == 1.0
    tool.main([
        TINY, TINY, '--batch-size', '2', '--iters', '1', '--warmup', '0',
        '--repeat', '2', '--threads', '1', '--matmul-size', '64', '--rotate',
        '--out',
        str(out), '--malloc', 'default'
    ])
    assert 'each round one config later' in capsys.readouterr().out
    assert [r['rotate']
            for r in json.loads(out.read_text())['results']] == [True, True]


def test_tool_malloc_choice(monkeypatch):
    """--malloc keep applies mmssl.utils.cpu_memory on CPU only, never over
    an allocator the environment chose; default leaves malloc alone."""
    spec = importlib.util.spec_from_file_location(
        'benchmark_train',
        osp.join(ROOT, 'tools/analysis_tools/benchmark_train.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    calls = []
    monkeypatch.setattr(tool, 'keep_freed_memory',
                        lambda: calls.append(1) or True)
    monkeypatch.setattr(tool, 'user_allocator_env', lambda: [])
    assert tool.parse_args([TINY]).malloc == 'default'
    assert tool.choose_malloc('keep', 'cpu') == 'keep' and calls == [1]
    assert tool.choose_malloc('default', 'cpu') == 'default'
    assert tool.choose_malloc('keep', 'cuda') == 'default (CUDA run)'
    assert calls == [1]
    monkeypatch.setattr(tool, 'user_allocator_env', lambda: ['LD_PRELOAD'])
    assert tool.choose_malloc('keep', 'cpu') == \
        'set by the environment (LD_PRELOAD)'
    monkeypatch.setattr(tool, 'user_allocator_env', lambda: [])
    monkeypatch.setattr(tool, 'keep_freed_memory', lambda: False)
    assert tool.choose_malloc('keep', 'cpu') == 'default (not settable)'
    assert calls == [1]
    with pytest.raises(SystemExit):
        tool.parse_args([TINY, '--malloc', 'jemalloc'])


def test_tool_arm_options_set_one_config_each(tmp_path):
    """--arm-options: one config with and without a setting in one run
    (the second arm's model is built with its own mask ratio)."""
    spec = importlib.util.spec_from_file_location(
        'benchmark_train',
        osp.join(ROOT, 'tools/analysis_tools/benchmark_train.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    args = tool.parse_args(
        [TINY, TINY, '--arm-options', '-', 'model.backbone.mask_ratio=0.5'])
    assert args.arm_options == [{}, {'model.backbone.mask_ratio': 0.5}]
    cfgs = tool.load_configs(args.configs, {'model.backbone.mask_ratio': 0.6},
                             args.arm_options)
    assert [c.model.backbone.mask_ratio for c in cfgs] == [0.6, 0.5]
    with pytest.raises(SystemExit):  # one string per config
        tool.parse_args([TINY, TINY, '--arm-options', '-'])
    with pytest.raises(SystemExit):  # not KEY=VALUE
        tool.parse_args([TINY, '--arm-options', 'compile'])
    with pytest.raises(Exception, match='backbon'):  # unknown key, named
        tool.load_configs([TINY], None, [{'model.backbon.depth': 1}])


@pytest.mark.parametrize('hwm', [True, False])
def test_step_memory_sees_an_allocation(monkeypatch, hwm):
    from mmssl.analysis import step_memory
    if not hwm:  # kernels without clear_refs: VmRSS is sampled instead
        monkeypatch.setattr(step_memory, '_reset_peak_rss', lambda: False)
    meter = step_memory.StepMemory(torch.device('cpu'))
    meter.start()
    block = torch.ones(16 * 1024 * 1024)  # 64 MiB, written, so resident
    time.sleep(0.05)
    del block
    assert meter.stop() > 48 * 1024 * 1024


def test_text_configs_get_token_batches():
    """ALBERT vs its unshared BERT: random full-length token sequences go
    through the config's own masking / packing; the same H and layers cost
    about the same FLOPs, BERT has more parameters."""
    from mmengine.config import Config

    from mmssl.analysis.benchmark import make_synthetic_batch
    albert = osp.join(
        ROOT, 'configs/albert/albert_tiny_1xb32-lamb-20e_embedded-text.py')
    bert = albert.replace('albert_tiny', 'bert_tiny')
    batch = make_synthetic_batch(Config.fromfile(albert), 3)
    assert [len(ids) for ids in batch['inputs']['input_ids']] == [128] * 3
    sample = batch['data_samples'][0]
    assert sample.mlm_positions.shape == (20, )  # 0.15 x 128 -> 19, cap 20
    assert int(sample.mlm_weights.sum()) == 19
    assert int(sample.sop_label) in (0, 1)
    results = time_once([albert, bert])
    assert results[1]['num_params'] > 2.5 * results[0]['num_params']
    ratio = results[1]['flops_per_img'] / results[0]['flops_per_img']
    assert 0.9 < ratio < 1.2


def test_data2vec2_text_config_gets_token_blocks():
    """data2vec 2.0 text (model-side masks, packed token blocks, no text
    data preprocessor) and its MLM baseline time side by side."""
    from mmengine.config import Config

    from mmssl.analysis.benchmark import make_synthetic_batch
    d2v2 = osp.join(
        ROOT, 'configs/data2vec2_text/'
        'data2vec2-text_tiny_1xb8-adamw-120iter_embedded-text.py')
    mlm = osp.join(
        ROOT, 'configs/data2vec2_text/'
        'mlm_d2v2-text-tiny_1xb32-adamw-240iter_embedded-text.py')
    batch = make_synthetic_batch(Config.fromfile(d2v2), 2)
    assert tuple(batch['inputs'].shape) == (2, 128)
    results = time_once([d2v2, mlm])
    # 8 clones through the student + the teacher: several times MLM's work
    assert results[0]['flops_per_img'] > 3 * results[1]['flops_per_img']


def test_speech_config_gets_waveforms_of_its_crop():
    """data2vec 2.0 speech: random waveforms of the pipeline's crop length,
    packed with their num_samples, time through the same tool."""
    from mmengine.config import Config

    from mmssl.analysis.benchmark import make_synthetic_batch
    path = osp.join(
        ROOT, 'configs/data2vec2_speech/'
        'data2vec2_audio-tiny_1xb16-20e_embedded-speech.py')
    batch = make_synthetic_batch(Config.fromfile(path), 2)
    assert [tuple(x.shape) for x in batch['inputs']] == [(16000, )] * 2
    assert batch['data_samples'][0].num_samples == 16000
    res = time_once([path])
    assert res[0]['flops_per_img'] > 0 and res[0]['loss'] > 0


def test_image_classifier_config_gets_labels():
    """A classifier (a head with num_classes) gets one random label per
    image in its range, the images stay those of a label-free batch, and a
    fine-tuning config and the noisy-label one time through the tool (they
    stopped at the missing ``gt_label`` before)."""
    from mmengine.config import Config

    from mmssl.analysis.benchmark import make_synthetic_batch
    vit = osp.join(ROOT,
                   'configs/poslabel/vit-tiny-p8_1xb64-coslr-20e_embedded.py')
    anm = osp.join(
        ROOT,
        'configs/anm/anm_resnet18-tiny_1xb64-coslr-16e_embedded-sym50.py')
    cfg = Config.fromfile(vit)
    batch = make_synthetic_batch(cfg, 16, seed=3)
    labels = [int(s.gt_label) for s in batch['data_samples']]
    assert all(0 <= y < cfg.model.head.num_classes for y in labels)
    assert len(set(labels)) > 1
    cfg.model.head.pop('num_classes')
    unlabelled = make_synthetic_batch(cfg, 16, seed=3)
    assert torch.equal(batch['inputs'], unlabelled['inputs'])
    assert 'gt_label' not in unlabelled['data_samples'][0]
    res = time_once([vit, anm])
    assert all(r['flops_per_img'] > 0 and r['loss'] > 0 for r in res)


def test_class_conditional_ddpm_and_a_clear_error_for_other_fields():
    """The class-conditional DDPM gets labels in its UNet's class range and
    images of its sample size; a config whose step needs what the batch
    does not make (CLIP's captions) is refused naming the config and the
    missing field, not with a bare AttributeError."""
    from mmengine.config import Config

    from mmssl.analysis.benchmark import make_synthetic_batch
    ddpm = osp.join(
        ROOT, 'configs/difffashion/ddpm_unet-tiny_1xb64-10e_embedded32.py')
    cfg = Config.fromfile(ddpm)
    batch = make_synthetic_batch(cfg, 8)
    assert tuple(batch['inputs'].shape) == (8, 3, 32, 32)
    assert all(0 <= int(s.gt_label) < cfg.model.unet.num_class_embeds
               for s in batch['data_samples'])
    assert time_once([ddpm])[0]['loss'] > 0
    clip = osp.join(ROOT, 'configs/clip/clip_tiny-rn_1xb32-12e_embedded.py')
    with pytest.raises(ValueError, match=r'clip_tiny.*caption.*tools/train'):
        time_once([clip])


def test_cross_attention_and_transposed_conv_flops_match_hand_count():
    """CPU cross-attention (n queries, m keys): each of the 7 products of
    the forward and backward is ``2 * b * h * n * m * d``; a transposed
    (grouped, strided) convolution costs ``2 * B * input positions * C_in *
    C_out / groups * kernel`` per pass (three passes)."""
    b, h, n, m, d = 2, 3, 5, 7, 4

    class CrossAttention(nn.Module):

        def forward(self, q, k, v):
            return F.scaled_dot_product_attention(q, k, v)

    q, k, v = (
        torch.randn(b, h, length, d, requires_grad=True)
        for length in (n, m, m))
    assert count_train_flops(CrossAttention(),
                             (q, k, v)) == 7 * 2 * b * h * n * m * d
    batch, c_in, c_out, kernel, size = 2, 8, 4, 3, 5
    for groups in (1, 2):
        conv = nn.ConvTranspose2d(
            c_in, c_out, kernel, stride=2, groups=groups, bias=False)
        x = torch.randn(batch, c_in, size, size, requires_grad=True)
        forward = 2 * batch * size**2 * c_in * (c_out // groups) * kernel**2
        assert count_train_flops(conv, x) == 3 * forward


def test_loss_fn_flops_are_counted():
    """A plain module's ``loss_fn`` runs inside the counter: a product
    with a constant (c_out, 1) vector adds its forward and its input
    gradient, ``2 * 2 * batch * c_out``."""
    batch, c_in, c_out = 4, 6, 5
    layer = nn.Linear(c_in, c_out)
    x = torch.randn(batch, c_in)
    proj = torch.randn(c_out, 1)
    linear = 2 * (2 * batch * c_in * c_out)  # forward + weight gradient
    assert count_train_flops(
        layer, x, lambda out:
        (out @ proj).sum()) == linear + 2 * (2 * batch * c_out)
    assert count_train_flops(layer, x) == linear


def test_labels_reach_the_pipeline_and_cover_the_classes():
    """A classifier's labels are the same whether the images go through
    the pipeline (``PackInputs`` with ``algorithm_keys``) or not, take
    every value of ``range(num_classes)``, and the images have the
    backbone's (H, W) when it is not square."""
    from mmengine.config import Config

    from mmssl.analysis.benchmark import make_synthetic_batch
    model = dict(backbone=dict(img_size=(8, 12)), head=dict(num_classes=2))
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='mmpretrain.PackInputs', algorithm_keys=['mask'])
    ]
    piped = make_synthetic_batch(
        Config(
            dict(
                model=model,
                train_dataloader=dict(dataset=dict(pipeline=pipeline)))),
        8,
        seed=1)
    plain = make_synthetic_batch(Config(dict(model=model)), 8, seed=1)
    for batch in (piped, plain):
        assert [tuple(x.shape) for x in batch['inputs']] == [(3, 8, 12)] * 8
    labels = [int(s.gt_label) for s in plain['data_samples']]
    assert set(labels) == {0, 1}
    assert [int(s.gt_label) for s in piped['data_samples']] == labels
    assert all(
        torch.equal(a, b) for a, b in zip(piped['inputs'], plain['inputs']))


def test_synthetic_batch_errors_name_the_config_and_the_field():
    """A missing field (``KeyError`` or ``AttributeError``) becomes a
    ValueError naming the config and the field, chained to the original;
    other errors pass through."""
    from mmssl.analysis.synthetic_batch import synthetic_batch_errors
    for err in (KeyError('gt_label'),
                AttributeError("'DataSample' has no attribute 'caption'")):
        with pytest.raises(ValueError) as info:
            with synthetic_batch_errors('my_cfg.py'):
                raise err
        assert str(info.value).startswith('my_cfg.py: ')
        assert type(err).__name__ in str(info.value)
        assert str(err) in str(info.value)
        assert info.value.__cause__ is err
    with pytest.raises(RuntimeError, match='not a field'):
        with synthetic_batch_errors('my_cfg.py'):
            raise RuntimeError('not a field')
