# CoOp + SubPT, the paper's three phases: (A) a CoOp run whose prompts after
# epochs 1..9 give (B) the rank-4 subspace U, saved as subpt_subspace.pth by
# the online SubPT config (identical to CoOp up to epoch 9); (C) a fresh run
# from the same seeded initialisation with every prompt gradient projected
# onto U from the first step. tools/analysis_tools/base_to_novel.py points
# subspace_file at <work-dir>/subpt/subpt_subspace.pth of the same call.
_base_ = ['../coop/coop_tiny-rn_1xb32-30e_embedded-b2n.py']
custom_hooks = [
    dict(type='mmssl.PromptClassNamesHook'),
    dict(
        type='mmssl.SubPTHook',
        subspace_file='work_dirs/base_to_novel/subpt/subpt_subspace.pth'),
]
