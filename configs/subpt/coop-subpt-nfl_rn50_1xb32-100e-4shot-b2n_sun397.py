# CoOp + SubPT + NFL (novel names, cosine, weight 1), base-to-novel: sun397.
_base_ = ['./coop-subpt_rn50_1xb32-100e-4shot-b2n_sun397.py']
# NFL targets: zero-shot features of the novel names with OpenAI's 80 ImageNet
# templates plus CoOp's template of the data set (the reference's ensemble).
model = dict(
    nfl=dict(
        names='novel',
        weight=1.0,
        loss='cosine',
        templates=['openai_imagenet', 'a photo of a {}.']))
