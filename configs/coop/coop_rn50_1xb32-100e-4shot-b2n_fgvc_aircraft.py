# CoOp, base-to-novel, RN50, 4 shots, 100 epochs (SubPT's setting): fgvc_aircraft.
_base_ = [
    '../_base_/models/coop_rn50.py',
    '../_base_/datasets/coop/fgvc_aircraft.py',
    '../_base_/schedules/coop_sgd_100e.py', '../_base_/default_runtime.py'
]
num_shots = 4
train_dataloader = dict(dataset=dict(num_shots=num_shots))
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20),
    checkpoint=dict(type='CheckpointHook', interval=100, max_keep_ckpts=1))
randomness = dict(seed=1)
