# Copyright (c) mmssl contributors. All rights reserved.
from .backbones.d2v2_vit import D2V2ViT  # noqa: F401
from .heads.d2v2_head import D2V2Head  # noqa: F401
from .losses.d2v2_loss import D2V2RegressionLoss  # noqa: F401
from .losses.nt_xent import NTXentLoss, nt_xent_loss  # noqa: F401
from .necks.d2v2_decoder import D2V2ConvDecoder2d  # noqa: F401
from .necks.densecl_neck import DenseCLNeckBN  # noqa: F401
from .selfsup import *  # noqa: F401,F403
from .utils import *  # noqa: F401,F403
try:  # universal detection needs mmdet
    from .unidet import *  # noqa: F401,F403,E402
except ImportError as _unidet_err:  # pragma: no cover
    import warnings as _warnings
    _warnings.warn(f'mmssl.models.unidet unavailable: {_unidet_err}')
from .clip import *  # noqa: F401,F403,E402
from .prompt import *  # noqa: F401,F403,E402
from .diffusion import *  # noqa: F401,F403,E402
