# Copyright (c) mmssl contributors. All rights reserved.
from .fashion import (fashion_metrics, key_self_similarity, mask_score_auroc,
                      pixel_metrics)
from .health import effective_rank, representation_health
from .knn import knn_accuracy, knn_classify
from .linear_probe import linear_probe, standardize_features, topk_accuracy
# ``wer`` / ``cer`` stay in :mod:`.wer`: a package-level ``wer`` would hide
# the module of the same name
from .wer import char_errors, edit_distance, word_errors

__all__ = [
    'knn_classify', 'knn_accuracy', 'linear_probe', 'standardize_features',
    'topk_accuracy', 'effective_rank', 'representation_health',
    'edit_distance', 'word_errors', 'char_errors'
]
