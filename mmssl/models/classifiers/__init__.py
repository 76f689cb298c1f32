# Copyright (c) mmssl contributors. All rights reserved.
"""Classifiers: mmpretrain classifiers extended by mmssl methods (positional
labels, SubTuning, adversarial noisy masking)."""
from .anm_classifier import ANMClassifier
from .poslabel_classifier import PosLabelClassifier
from .subtuning import SubTuningClassifier
from .subtuning_multitask import MultiTaskSubTuning
from .text_classifier import TextClassifier

__all__ = [
    'PosLabelClassifier', 'SubTuningClassifier', 'MultiTaskSubTuning',
    'ANMClassifier', 'TextClassifier'
]

from .ctc_recognizer import CTCSpeechRecognizer  # noqa: E402

__all__ += ['CTCSpeechRecognizer']
