# anm_resnet18-tiny_1xb64-coslr-16e_embedded-sym50.py at 40 % asymmetric noise: the
# flips between similar shapes (cross -> star, semicircle -> circle,
# ellipse -> circle, hexagon <-> pentagon), the CIFAR protocol's kind of
# noise; the confidence penalty in the warm-up, as for CIFAR-10 asym40.
#   python tools/train.py configs/anm/anm_resnet18-tiny_1xb64-coslr-16e_embedded-asym40.py
_base_ = ['./anm_resnet18-tiny_1xb64-coslr-16e_embedded-sym50.py']

train_dataloader = dict(
    dataset=dict(
        noise_type='asymmetric',
        noise_rate=0.4,
        mapping=[[8, 7], [2, 0], [1, 0], [6, 5], [5, 6]]))
model = dict(warmup_conf_penalty=1.0)
