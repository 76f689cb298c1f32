# Copyright (c) mmssl contributors. All rights reserved.
from .base_novel import (BaseNovelAccuracy, base_novel_accuracy,  # noqa: F401
                         harmonic_mean)
from .unidet_metric import UniDetPerSourceMetric  # noqa: F401,E402
from .fashion_metric import FashionTransferMetric  # noqa: F401,E402
