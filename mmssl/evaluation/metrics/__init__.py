# Copyright (c) mmssl contributors. All rights reserved.
from .base_novel import base_novel_accuracy  # noqa: F401
from .base_novel import BaseNovelAccuracy, harmonic_mean
from .fashion_metric import FashionTransferMetric  # noqa: F401,E402
from .glue_metric import GLUEMetric, MLMSOPMetric, glue_scores  # noqa: F401
from .unidet_metric import UniDetPerSourceMetric  # noqa: F401,E402
from .wer_metric import WERMetric  # noqa: F401,E402
