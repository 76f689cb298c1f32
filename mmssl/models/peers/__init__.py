# Copyright (c) mmssl contributors. All rights reserved.
"""Other libraries' implementations behind mmengine's model interface, the
peers that benchmarks time beside mmssl's (their packages are optional
benchmark dependencies, imported when a peer is built)."""
from .lightly_mae import LightlyMAE
from .lightly_simclr import LightlySimCLR

__all__ = ['LightlyMAE', 'LightlySimCLR']
