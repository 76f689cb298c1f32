# Copyright (c) mmssl contributors. All rights reserved.
from .coop import CoOp
from .nfl import nfl_loss
from .prompt_learner import NameTokens, PromptLearner
from .subspace import compute_subspace, project_onto_subspace

__all__ = [
    'CoOp', 'nfl_loss', 'NameTokens', 'PromptLearner', 'compute_subspace',
    'project_onto_subspace'
]
