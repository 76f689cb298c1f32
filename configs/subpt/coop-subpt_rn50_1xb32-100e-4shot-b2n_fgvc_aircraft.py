# CoOp + SubPT (t_early 30, rank 10), base-to-novel, RN50, 4 shots: fgvc_aircraft.
_base_ = ['../coop/coop_rn50_1xb32-100e-4shot-b2n_fgvc_aircraft.py']
custom_hooks = [
    dict(type='mmssl.PromptClassNamesHook'),
    dict(type='mmssl.SubPTHook', t_early=30, rank=10),
]
