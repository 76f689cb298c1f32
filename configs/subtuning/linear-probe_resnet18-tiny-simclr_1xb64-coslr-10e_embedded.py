# Linear probing of the SimCLR ResNet-18: SubTuning with no block (the start
# of the greedy search); the spec's linear-probe learning rate (1e-2).
_base_ = './subtuning_resnet18-tiny-simclr_1xb64-coslr-10e_embedded.py'

model = dict(trainable_blocks=[])
optim_wrapper = dict(optimizer=dict(lr=1e-2))
