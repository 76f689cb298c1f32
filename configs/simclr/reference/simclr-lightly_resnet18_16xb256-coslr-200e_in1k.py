# The lightly peer of configs/simclr/simclr_resnet18_16xb256-coslr-200e_in1k.py
# (torchvision ResNet-18 without fc, SimCLRProjectionHead 512 -> 512 -> 128,
# NTXentLoss at 0.1; see simclr-lightly_resnet50_16xb256-coslr-200e_in1k.py):
#   python tools/analysis_tools/benchmark_train.py \
#       configs/simclr/simclr_resnet18_16xb256-coslr-200e_in1k.py \
#       configs/simclr/reference/simclr-lightly_resnet18_16xb256-coslr-200e_in1k.py \
#       --names mmssl lightly --batch-size 32 --threads 2
_base_ = ['./simclr-lightly_resnet50_16xb256-coslr-200e_in1k.py']

model = dict(depth=18, hidden_dim=512)
