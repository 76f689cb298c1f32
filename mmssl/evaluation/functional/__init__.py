# Copyright (c) mmssl contributors. All rights reserved.
from .fashion import (fashion_metrics, key_self_similarity, mask_score_auroc,
                      pixel_metrics)
from .health import effective_rank, representation_health
from .knn import knn_accuracy, knn_classify
from .linear_probe import linear_probe, standardize_features, topk_accuracy

__all__ = [
    'knn_classify', 'knn_accuracy', 'linear_probe', 'standardize_features',
    'topk_accuracy', 'effective_rank', 'representation_health'
]
