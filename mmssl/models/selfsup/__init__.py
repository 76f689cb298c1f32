# Copyright (c) mmssl contributors. All rights reserved.
from .mae import MAE, MAEViT

__all__ = ['MAE', 'MAEViT']
