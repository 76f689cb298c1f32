# Faster R-CNN with FPN on a ResNet-50 pretrained by DenseCL, Pascal VOC
# (data/VOCdevkit: trained on VOC2007+2012 trainval, tested on VOC2007
# test, 20 classes, VOC mAP@0.5): mmdet's VOC recipe (4 epochs over the
# 3x-repeated set) with the detection-transfer settings of
# faster-rcnn_r50-fpn-densecl_syncbn_8xb2-1x_coco.py (SyncBN in backbone,
# FPN and a 4-conv-1-fc box head, no frozen stage, norm_eval=False).
_base_ = 'mmdet::pascal_voc/faster-rcnn_r50_fpn_1x_voc0712.py'
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
            norm_cfg=norm_cfg)))
