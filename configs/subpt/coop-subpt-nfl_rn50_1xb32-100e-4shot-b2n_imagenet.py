# CoOp + SubPT + NFL (novel names, cosine, weight 1), base-to-novel: imagenet.
_base_ = ['./coop-subpt_rn50_1xb32-100e-4shot-b2n_imagenet.py']
# NFL targets: zero-shot features of the novel names with OpenAI's 80 ImageNet
# templates (the reference's ensemble; on ImageNet without an extra one).
model = dict(
    nfl=dict(
        names='novel',
        weight=1.0,
        loss='cosine',
        templates=['openai_imagenet']))
