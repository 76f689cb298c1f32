# ViT-B/16 + APL trained from scratch on Mini-ImageNet (100 ImageNet classes;
# the paper reports 64.43 top-1):
# poslabel-apl_vit-base-p16_2xb256-amp-150e_in1k.py with only the data set and
# the class count changed. Data: data/mini-imagenet with images/ and the
# split files meta/train.txt, meta/val.txt of '<path under images/> <label>'
# lines (500 / 100 images per class); the mmssl.MiniImageNet docstring gives
# the layout and how to make the split files. Train with
#   bash tools/dist_train.sh configs/poslabel/poslabel-apl_vit-base-p16_2xb256-amp-150e_mini-in.py 2
_base_ = ['./poslabel-apl_vit-base-p16_2xb256-amp-150e_in1k.py']

data_preprocessor = dict(num_classes=100)
model = dict(head=dict(num_classes=100))
train_dataloader = dict(
    dataset=dict(type='mmssl.MiniImageNet', data_root='data/mini-imagenet'))
val_dataloader = dict(
    dataset=dict(type='mmssl.MiniImageNet', data_root='data/mini-imagenet'))
test_dataloader = val_dataloader
