# Copyright (c) mmssl contributors. All rights reserved.
"""mmssl's models, by role as in mmpretrain.

Every role package exports its public names (``from mmssl.models.backbones
import D2V2ViT``), and this package re-exports them all (``from mmssl.models
import D2V2ViT``). Importing it registers every model part in
``mmssl.registry.MODELS``.
"""
from .backbones import *  # noqa: F401,F403
from .classifiers import *  # noqa: F401,F403
from .data_preprocessors import *  # noqa: F401,F403
from .heads import *  # noqa: F401,F403
from .losses import *  # noqa: F401,F403
from .necks import *  # noqa: F401,F403
from .peers import *  # noqa: F401,F403
from .selfsup import *  # noqa: F401,F403
from .utils import *  # noqa: F401,F403

try:  # universal detection needs mmdet
    from .unidet import *  # noqa: F401,F403,E402
except ImportError as _unidet_err:  # pragma: no cover
    import warnings as _warnings
    _warnings.warn(f'mmssl.models.unidet unavailable: {_unidet_err}')
from .clip import *  # noqa: F401,F403,E402
from .diffusion import *  # noqa: F401,F403,E402
from .prompt import *  # noqa: F401,F403,E402
