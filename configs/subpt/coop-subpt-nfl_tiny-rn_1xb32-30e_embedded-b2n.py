# CoOp + SubPT + NFL: also pull the novel names' learned-prompt text features
# toward their zero-shot ones (cosine, weight 1).
_base_ = ['./coop-subpt_tiny-rn_1xb32-30e_embedded-b2n.py']
model = dict(
    nfl=dict(
        names='novel',
        weight=1.0,
        loss='cosine',
        templates=['a photo of a {}.']))
