# CoOp + SubPT: the prompts after epochs 1..9 span a rank-4 subspace (the
# ratio of SubPT's base-to-novel setting, 30 of 100 epochs); every later
# prompt gradient is projected onto it.
_base_ = ['../coop/coop_tiny-rn_1xb32-30e_embedded-b2n.py']
custom_hooks = [
    dict(type='mmssl.PromptClassNamesHook'),
    dict(type='mmssl.SubPTHook', t_early=9, rank=4),
]
