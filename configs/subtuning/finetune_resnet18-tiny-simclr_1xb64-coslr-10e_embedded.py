# Full finetuning of the SimCLR ResNet-18: every block (stem included)
# and the head train, with SubTuning's recipe (AdamW 1e-3, cosine, 10 epochs).
_base_ = './subtuning_resnet18-tiny-simclr_1xb64-coslr-10e_embedded.py'

model = dict(
    trainable_blocks=['conv1', 'bn1', 'layer1', 'layer2', 'layer3', 'layer4'])
