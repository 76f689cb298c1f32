# mmssl's runtime defaults for configs that run in mmpretrain's scope.
# mmssl parts are named with the `mmssl.` prefix; importing mmssl also makes
# checkpoint loading weights-only safe and checkpoint saving atomic.
default_scope = 'mmpretrain'
custom_imports = dict(imports=['mmssl'], allow_failed_imports=False)

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=100),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=1),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='VisualizationHook', enable=False),
    # random generator states in checkpoints, for exact --resume
    random_state=dict(type='mmssl.RandomStateHook'),
)

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    # tools/train.py falls back to gloo when no GPU is present
    dist_cfg=dict(backend='nccl'),
)

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='UniversalVisualizer', vis_backends=vis_backends)

log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=None, deterministic=False)
