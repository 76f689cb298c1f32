# Large-UniDet in miniature: Cascade R-CNN (small ResNet-18, FPN) with the
# hierarchy-aware sigmoid BCE, trained on both embedded detection sources
# (source_a, source_b: different, overlapping label spaces) in their unified
# 10-class label space; evaluated per source in each source's own classes.
# CPU, a few minutes. The unified label space and the remapped annotations
# are built on first use under data/embedded/unidet/unified/ (the same as
# `python tools/dataset_converters/unify_label_space.py --embedded
# data/embedded`).
default_scope = 'mmdet'
custom_imports = dict(imports=['mmssl'], allow_failed_imports=False)

data_root = 'data/embedded/'
label_space = data_root + 'unidet/unified/label_space.json'
num_classes = 10  # unified classes of the embedded sources
img_scale = (128, 128)
max_iters = 400

# ---------------------------------------------------------------- model
cls_loss = dict(
    type='mmssl.HierarchyBCELoss',
    label_space=label_space,
    set_pos_parents=True,  # the class and its ancestors are positive
    ignore_children=True,
    pos_parents='base',
    ignore='child+',  # descendants and edit-only ancestors ignored
    loss_weight=1.5)


def _stage(iou):
    return dict(
        type='mmssl.UniDetBBoxHead',
        in_channels=64,
        fc_out_channels=256,
        roi_feat_size=7,
        num_classes=num_classes,
        bbox_coder=dict(
            type='DeltaXYWHBBoxCoder',
            target_means=[0., 0., 0., 0.],
            target_stds=[0.04, 0.04, 0.08, 0.08]),
        reg_class_agnostic=True,
        loss_cls=cls_loss,
        loss_bbox=dict(type='SmoothL1Loss', beta=1.0, loss_weight=1.0))


def _rcnn(iou):
    return dict(
        assigner=dict(
            type='MaxIoUAssigner',
            pos_iou_thr=iou,
            neg_iou_thr=iou,
            min_pos_iou=iou,
            match_low_quality=False,
            ignore_iof_thr=-1),
        sampler=dict(
            type='RandomSampler',
            num=32,
            pos_fraction=0.25,
            neg_pos_ub=-1,
            add_gt_as_proposals=True),
        pos_weight=-1,
        debug=False)


model = dict(
    type='mmssl.UniDetCascadeRCNN',
    freeze_backbone=False,  # from scratch here; the RVC recipe freezes it
    data_preprocessor=dict(
        type='DetDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_size_divisor=32),
    backbone=dict(
        type='ResNet',
        depth=18,
        base_channels=16,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        frozen_stages=-1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False,
        style='pytorch',
        init_cfg=None),
    neck=dict(
        type='FPN', in_channels=[16, 32, 64, 128], out_channels=64,
        num_outs=5),
    rpn_head=dict(
        type='RPNHead',
        in_channels=64,
        feat_channels=64,
        anchor_generator=dict(
            type='AnchorGenerator',
            scales=[8],
            ratios=[0.5, 1.0, 2.0],
            strides=[4, 8, 16, 32, 64]),
        bbox_coder=dict(
            type='DeltaXYWHBBoxCoder',
            target_means=[.0, .0, .0, .0],
            target_stds=[1.0, 1.0, 1.0, 1.0]),
        loss_cls=dict(
            type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0),
        loss_bbox=dict(type='SmoothL1Loss', beta=1.0 / 9.0, loss_weight=1.0)),
    roi_head=dict(
        type='CascadeRoIHead',
        num_stages=3,
        stage_loss_weights=[1, 0.5, 0.25],
        bbox_roi_extractor=dict(
            type='SingleRoIExtractor',
            roi_layer=dict(
                type='RoIAlign',
                output_size=7,
                sampling_ratio=2,
                use_torchvision=True),
            out_channels=64,
            featmap_strides=[4, 8, 16, 32]),
        bbox_head=[_stage(0.55), _stage(0.65),
                   _stage(0.75)]),
    train_cfg=dict(
        rpn=dict(
            assigner=dict(
                type='MaxIoUAssigner',
                pos_iou_thr=0.7,
                neg_iou_thr=0.3,
                min_pos_iou=0.3,
                match_low_quality=True,
                ignore_iof_thr=-1),
            sampler=dict(
                type='RandomSampler',
                num=128,
                pos_fraction=0.5,
                neg_pos_ub=-1,
                add_gt_as_proposals=False),
            allowed_border=0,
            pos_weight=-1,
            debug=False),
        rpn_proposal=dict(
            nms_pre=600,
            max_per_img=300,
            nms=dict(type='nms', iou_threshold=0.7),
            min_bbox_size=0),
        rcnn=[_rcnn(0.55), _rcnn(0.65), _rcnn(0.75)]),
    test_cfg=dict(
        rpn=dict(
            nms_pre=300,
            max_per_img=100,
            nms=dict(type='nms', iou_threshold=0.7),
            min_bbox_size=0),
        # sigmoid of the stages' mean logits, as the reference
        rcnn=dict(
            score_thr=0.001,
            nms=dict(type='nms', iou_threshold=0.6),
            max_per_img=100)))

# ---------------------------------------------------------------- data
# `source` travels with each image so the metric can map predictions back
meta_keys = ('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor',
             'flip', 'flip_direction', 'source')
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs', meta_keys=meta_keys),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs', meta_keys=meta_keys),
]


def _source(name, split, times=None):
    ds = dict(
        type='mmssl.EmbeddedUniDetDataset',
        data_root=data_root,
        source=name,
        split=split,
        test_mode=split != 'train',
        filter_cfg=dict(filter_empty_gt=split == 'train', min_size=4))
    return ds if times is None else dict(
        type='RepeatDataset', times=times, dataset=ds)


# repeat factors as in the RVC recipe (COCO x4, OID x1, MVD x8); equal here
train_dataloader = dict(
    batch_size=8,
    num_workers=1,
    persistent_workers=True,
    # one image per class, classes in random order (Large-UniDet's sampler)
    sampler=dict(type='ClassAwareSampler', num_sample_class=1),
    batch_sampler=None,
    dataset=dict(
        type='mmssl.UnifiedConcatDataset',
        datasets=[
            _source('source_a', 'train', times=1),
            _source('source_b', 'train', times=1),
        ],
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=1,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='mmssl.UnifiedConcatDataset',
        datasets=[_source('source_a', 'val'),
                  _source('source_b', 'val')],
        pipeline=test_pipeline,
        test_mode=True))
test_dataloader = val_dataloader
val_evaluator = dict(
    type='mmssl.UniDetPerSourceMetric',
    label_space=label_space,
    sources=dict(
        source_a=data_root + 'unidet/source_a/annotations/instances_val.json',
        source_b=data_root + 'unidet/source_b/annotations/instances_val.json'))
test_evaluator = val_evaluator

# ---------------------------------------------------------------- schedule
train_cfg = dict(
    type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=1e-4),
    paramwise_cfg=dict(norm_decay_mult=0.0),
    clip_grad=dict(max_norm=35, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(
        type='MultiStepLR',
        by_epoch=False,
        begin=0,
        end=max_iters,
        milestones=[int(max_iters * 0.75),
                    int(max_iters * 0.9)],
        gamma=0.1)
]

# ---------------------------------------------------------------- runtime
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(
        type='CheckpointHook',
        by_epoch=False,
        interval=max_iters,
        max_keep_ckpts=1),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='DetVisualizationHook'))
env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='gloo'))
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(
    type='DetLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=False)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0)
