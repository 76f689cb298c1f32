# Copyright (c) mmssl contributors. All rights reserved.
"""A small embedded speech corpus shared by the speech data tests."""
import os.path as osp

from mmssl.datasets import make_embedded_speech

#: Clips per split of the small corpus: one synthesis chunk each.
SMALL_SIZES = dict(num_train=8, num_val=4, num_test=4)


def small_speech_corpus(folder, **overrides) -> dict:
    """Make (once per folder) the small corpus; its manifest."""
    kwargs = dict(SMALL_SIZES, **overrides)
    return make_embedded_speech(osp.join(str(folder), 'speech'), **kwargs)
