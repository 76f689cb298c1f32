# Large-UniDet[S], the reference large recipe on mmdet 3.3: Cascade R-CNN +
# NAS-FPN + Cascade RPN on a fully frozen RegNetY-32GF, one detector for
# COCO + OpenImages (challenge 2019, 500 classes) + Mapillary Vistas in the
# unified 540-class RVC label space, hierarchy-aware sigmoid BCE, dataset
# repeat factors (COCO x4, OID x1, MVD x8) and class-aware sampling.
# 8 GPUs x 2 images, 8 epochs (about 1.15M iterations).
#
# Data preparation (see configs/unidet/README.md):
#   1. the RVC label space and every source's annotations remapped to it:
#      python tools/dataset_converters/unify_label_space.py \
#        --mapping label_spaces/obj_det_mapping_540.csv \
#        --hierarchy label_spaces/challenge-2019-label500-hierarchy.json \
#        --hierarchy-source oid --edits rvc \
#        --ann coco=data/coco/annotations/instances_train2017.json \
#        --ann coco=data/coco/annotations/instances_val2017.json \
#        --ann oid=data/oid/annotations/oid_challenge_2019_train_bbox.json \
#        --ann oid=data/oid/annotations/oid_challenge_2019_val_bbox.json \
#        --ann mvd=data/mvd/annotations/mvd_boxable_train.json \
#        --ann mvd=data/mvd/annotations/mvd_boxable_val.json \
#        --out-dir data/rvc
#      (OID and MVD as COCO json, e.g. made with the RVC devkit; their
#      category names must be the mapping's: OID MIDs, MVD labels.)
#   2. SEER RegNetY-32GF trunk weights converted to TorchvisionRegNet keys,
#      given as backbone init_cfg (the backbone is frozen: they are needed).
default_scope = 'mmdet'
custom_imports = dict(imports=['mmssl'], allow_failed_imports=False)

label_space = 'data/rvc/label_space.json'
num_classes = 540
backend_args = None

cls_loss = dict(
    type='mmssl.HierarchyBCELoss',
    label_space=label_space,
    set_pos_parents=True,
    ignore_children=True,
    pos_parents='base',  # OpenImages ancestors are positives
    ignore='child+',  # RVC descendants and edit-only parents ignored
    loss_weight=1.5)
rpn_weight = 0.7


def _stage_head():
    return dict(
        type='mmssl.UniDetBBoxHead',
        in_channels=256,
        fc_out_channels=1024,
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
            num=512,
            pos_fraction=0.25,
            neg_pos_ub=-1,
            add_gt_as_proposals=True),
        pos_weight=-1,
        debug=False)


model = dict(
    type='mmssl.UniDetCascadeRCNN',
    freeze_backbone=True,  # the whole backbone; only neck and heads train
    data_preprocessor=dict(
        type='DetDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_size_divisor=128),
    backbone=dict(
        type='mmssl.TorchvisionRegNet',
        arch='regnet_y_32gf',
        out_indices=(0, 1, 2, 3),
        frozen_stages=4,
        norm_eval=True,
        init_cfg=None),  # dict(type='Pretrained', checkpoint=<SEER trunk>)
    neck=dict(
        type='NASFPN',
        in_channels=[232, 696, 1392, 3712],
        out_channels=256,
        num_outs=5,
        stack_times=7,
        start_level=0,
        norm_cfg=dict(type='SyncBN', requires_grad=True)),
    rpn_head=dict(
        type='CascadeRPNHead',
        num_stages=2,
        stages=[
            dict(
                type='StageCascadeRPNHead',
                in_channels=256,
                feat_channels=256,
                anchor_generator=dict(
                    type='AnchorGenerator',
                    scales=[8],
                    ratios=[1.0],
                    strides=[4, 8, 16, 32, 64]),
                adapt_cfg=dict(type='dilation', dilation=3),
                bridged_feature=True,
                with_cls=False,
                reg_decoded_bbox=True,
                bbox_coder=dict(
                    type='DeltaXYWHBBoxCoder',
                    target_means=(.0, .0, .0, .0),
                    target_stds=(0.1, 0.1, 0.5, 0.5)),
                loss_bbox=dict(
                    type='IoULoss', linear=True,
                    loss_weight=10.0 * rpn_weight)),
            dict(
                type='StageCascadeRPNHead',
                in_channels=256,
                feat_channels=256,
                adapt_cfg=dict(type='offset'),
                bridged_feature=False,
                with_cls=True,
                reg_decoded_bbox=True,
                bbox_coder=dict(
                    type='DeltaXYWHBBoxCoder',
                    target_means=(.0, .0, .0, .0),
                    target_stds=(0.05, 0.05, 0.1, 0.1)),
                loss_cls=dict(
                    type='CrossEntropyLoss',
                    use_sigmoid=True,
                    loss_weight=1.0 * rpn_weight),
                loss_bbox=dict(
                    type='IoULoss', linear=True,
                    loss_weight=10.0 * rpn_weight))
        ]),
    roi_head=dict(
        type='CascadeRoIHead',
        num_stages=3,
        stage_loss_weights=[1, 0.5, 0.25],
        bbox_roi_extractor=dict(
            type='SingleRoIExtractor',
            roi_layer=dict(type='RoIAlign', output_size=7, sampling_ratio=0),
            out_channels=256,
            featmap_strides=[4, 8, 16, 32]),
        bbox_head=[_stage_head(), _stage_head(),
                   _stage_head()]),
    train_cfg=dict(
        rpn=[
            dict(
                assigner=dict(
                    type='RegionAssigner', center_ratio=0.2, ignore_ratio=0.5),
                allowed_border=-1,
                pos_weight=-1,
                debug=False),
            dict(
                assigner=dict(
                    type='MaxIoUAssigner',
                    pos_iou_thr=0.7,
                    neg_iou_thr=0.7,
                    min_pos_iou=0.3,
                    ignore_iof_thr=-1),
                sampler=dict(
                    type='RandomSampler',
                    num=256,
                    pos_fraction=0.5,
                    neg_pos_ub=-1,
                    add_gt_as_proposals=False),
                allowed_border=-1,
                pos_weight=-1,
                debug=False)
        ],
        rpn_proposal=dict(
            nms_pre=2000,
            max_per_img=2000,
            nms=dict(type='nms', iou_threshold=0.8),
            min_bbox_size=0),
        rcnn=[_rcnn(0.55), _rcnn(0.65), _rcnn(0.75)]),
    test_cfg=dict(
        rpn=dict(
            nms_pre=1000,
            max_per_img=1000,
            nms=dict(type='nms', iou_threshold=0.8),
            min_bbox_size=0),
        rcnn=dict(
            score_thr=0.001,
            nms=dict(type='nms', iou_threshold=0.6),
            max_per_img=300)))

# ------------------------------------------------------------------ data
meta_keys = ('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor',
             'flip', 'flip_direction', 'source')
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='RandomResize', scale=[(1600, 480), (1600, 960)],
        keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs', meta_keys=meta_keys),
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=(1333, 800), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs', meta_keys=meta_keys),
]
# source -> (image folder, remapped annotations, original annotations,
# repeat factor)
sources = dict(
    coco=('data/coco/', 'train2017/', 'val2017/',
          'data/rvc/coco/instances_train2017.json',
          'data/rvc/coco/instances_val2017.json',
          'data/coco/annotations/instances_val2017.json', 4),
    oid=('data/oid/', 'train/', 'validation/',
         'data/rvc/oid/oid_challenge_2019_train_bbox.json',
         'data/rvc/oid/oid_challenge_2019_val_bbox.json',
         'data/oid/annotations/oid_challenge_2019_val_bbox.json', 1),
    mvd=('data/mvd/', 'training/images/', 'validation/images/',
         'data/rvc/mvd/mvd_boxable_train.json',
         'data/rvc/mvd/mvd_boxable_val.json',
         'data/mvd/annotations/mvd_boxable_val.json', 8),
)


def _train_source(name):
    root, train_img, _, train_ann, _, _, times = sources[name]
    return dict(
        type='RepeatDataset',
        times=times,
        dataset=dict(
            type='mmssl.UnifiedCocoDataset',
            label_space=label_space,
            source=name,
            data_root=root,
            ann_file=train_ann,
            data_prefix=dict(img=train_img),
            filter_cfg=dict(filter_empty_gt=True, min_size=32),
            backend_args=backend_args))


def _val_source(name):
    root, _, val_img, _, val_ann, _, _ = sources[name]
    return dict(
        type='mmssl.UnifiedCocoDataset',
        label_space=label_space,
        source=name,
        data_root=root,
        ann_file=val_ann,
        data_prefix=dict(img=val_img),
        test_mode=True,
        backend_args=backend_args)


train_dataloader = dict(
    batch_size=2,
    num_workers=2,
    persistent_workers=True,
    # Large-UniDet: each step cycles the valid unified classes in random
    # order and draws one image per class; per-class lists are built from
    # the repeated indices, so the repeat factors re-weight the sources
    sampler=dict(type='ClassAwareSampler', num_sample_class=1),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(
        type='mmssl.UnifiedConcatDataset',
        datasets=[_train_source(s) for s in ('coco', 'oid', 'mvd')],
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='mmssl.UnifiedConcatDataset',
        datasets=[_val_source(s) for s in ('coco', 'oid', 'mvd')],
        pipeline=test_pipeline,
        test_mode=True))
test_dataloader = val_dataloader
# COCO-style mAP per source in each source's own classes (OpenImages' own
# metric, with hierarchy expansion and group-of boxes, is not this one)
val_evaluator = dict(
    type='mmssl.UniDetPerSourceMetric',
    label_space=label_space,
    sources={
        name: v[5]
        for name, v in sources.items()
    })
test_evaluator = val_evaluator

# ------------------------------------------------------------- schedule
max_epochs = 8
train_cfg = dict(
    type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(
    type='AmpOptimWrapper',
    loss_scale=512.,
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=1e-4),
    paramwise_cfg=dict(norm_decay_mult=0., bypass_duplicate=True),
    clip_grad=dict(max_norm=35, norm_type=2))
param_scheduler = [
    dict(
        type='LinearLR', start_factor=5e-5, by_epoch=False, begin=0, end=4000),
    dict(
        type='MultiStepLR',
        begin=0,
        end=max_epochs,
        by_epoch=True,
        milestones=[6, 7],
        gamma=0.1)
]
auto_scale_lr = dict(enable=False, base_batch_size=16)

# -------------------------------------------------------------- runtime
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=2),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='DetVisualizationHook'))
env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'))
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(
    type='DetLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=True)
log_level = 'INFO'
load_from = None
resume = False
