# SimCLR with a ResNet-18 on ImageNet-1k: the ResNet-50 recipe
# (simclr_resnet50_16xb256-coslr-200e_in1k.py: LARS lr 4.8 at batch 4096,
# temperature 0.1, 200 epochs) with the 512-d ResNet-18 features and a
# 512 -> 512 -> 128 projection head (the width lightly's ResNet-18 examples
# use). Images in data/imagenet (not downloaded):
#   bash tools/dist_train.sh configs/simclr/simclr_resnet18_16xb256-coslr-200e_in1k.py 16
_base_ = ['./simclr_resnet50_16xb256-coslr-200e_in1k.py']

model = dict(
    backbone=dict(depth=18),
    neck=dict(in_channels=512, hid_channels=512, out_channels=128))
