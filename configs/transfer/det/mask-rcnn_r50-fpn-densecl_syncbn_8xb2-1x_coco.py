# Mask R-CNN with FPN on a ResNet-50 pretrained by DenseCL, COCO 2017
# (data/coco), 1x schedule: the transfer protocol of the DenseCL paper
# (SyncBN in the backbone, the FPN and the heads, a 4-conv-1-fc box head, no
# frozen stage, norm_eval=False) on mmdet's recipe. Box and mask mAP.
# `pretrained`: see faster-rcnn_r50-fpn-densecl_syncbn_8xb2-1x_coco.py.
_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['mmssl'], allow_failed_imports=False)

pretrained = 'work_dirs/transfer/densecl_resnet50_in1k/backbone_mmdet.pth'
norm_cfg = dict(type='SyncBN', requires_grad=True)

model = dict(
    backbone=dict(
        frozen_stages=-1,
        norm_cfg=norm_cfg,
        norm_eval=False,
        init_cfg=dict(
            type='Pretrained', prefix='backbone.', checkpoint=pretrained)),
    neck=dict(norm_cfg=norm_cfg),
    roi_head=dict(
        bbox_head=dict(
            type='Shared4Conv1FCBBoxHead',
            conv_out_channels=256,
            norm_cfg=norm_cfg),
        mask_head=dict(norm_cfg=norm_cfg)))
