# Copyright (c) mmssl contributors. All rights reserved.
"""Classifiers: mmpretrain classifiers extended by mmssl methods (positional
labels, SubTuning)."""
from .poslabel_classifier import PosLabelClassifier
from .subtuning import SubTuningClassifier
from .subtuning_multitask import MultiTaskSubTuning

__all__ = ['PosLabelClassifier', 'SubTuningClassifier', 'MultiTaskSubTuning']
