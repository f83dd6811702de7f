"""TSN: the order-blind baseline head (registered as `tsn`).

    X [B,T,C,h,w] ──identity──▶ Y [B,T,C,h,w]

With the classifier's mean over T,h,w this is TSN's average consensus (Wang et al. 2016): any
permutation of the frames gives the same logits.
"""
from __future__ import annotations

import torch
import torch.nn as nn


class TSN(nn.Module):
    def __init__(self, dim: int):
        """Args: dim: channels C of the backbone features (checked on input)."""
        super().__init__()
        self.dim = dim

    def forward(self, X: torch.Tensor) -> torch.Tensor:               # [B,T,C,h,w] → same
        if X.dim() != 5 or X.shape[2] != self.dim:
            raise ValueError(f"tsn head (dim={self.dim}) expects [B,T,{self.dim},h,w], got {tuple(X.shape)}")
        return X
