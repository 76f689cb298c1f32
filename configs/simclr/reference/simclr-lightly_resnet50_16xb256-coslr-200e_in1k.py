# The lightly peer of configs/simclr/simclr_resnet50_16xb256-coslr-200e_in1k.py:
# lightly 1.6's SimCLR as its ImageNet benchmark builds it (torchvision
# ResNet-50 without fc, SimCLRProjectionHead 2048 -> 2048 -> 128 with BN after both layers,
# NTXentLoss at temperature 0.1, both views as one batch) with the mmssl
# config's data preprocessor, LARS optimizer and schedule, for side-by-side
# benchmarks (needs `pip install --no-deps -r requirements/benchmark.txt`):
#   python tools/analysis_tools/benchmark_train.py \
#       configs/simclr/simclr_resnet50_16xb256-coslr-200e_in1k.py \
#       configs/simclr/reference/simclr-lightly_resnet50_16xb256-coslr-200e_in1k.py \
#       --names mmssl lightly --batch-size 16 --threads 2
_base_ = ['../simclr_resnet50_16xb256-coslr-200e_in1k.py']

model = dict(
    _delete_=True,
    type='mmssl.LightlySimCLR',
    depth=50,
    hidden_dim=2048,
    out_dim=128,
    temperature=0.1,
    data_preprocessor=dict(
        type='SelfSupDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        to_rgb=True))
# the mmssl config's LARS exclusions ('bn', 'bias', 'downsample.1' match
# torchvision's names too) plus the stem's BatchNorm (backbone.1 in the
# Sequential) and the projection head's two: every BN and bias, as in mmssl
optim_wrapper = dict(
    paramwise_cfg=dict(
        custom_keys={
            'backbone.1.': dict(decay_mult=0, lars_exclude=True),
            'projection_head.layers.1': dict(decay_mult=0, lars_exclude=True),
            'projection_head.layers.4': dict(decay_mult=0, lars_exclude=True)
        }))
