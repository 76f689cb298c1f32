# Copyright (c) mmssl contributors. All rights reserved.
"""Classifiers: mmpretrain classifiers with mmssl's auxiliary losses."""
from .poslabel_classifier import PosLabelClassifier

__all__ = ['PosLabelClassifier']
