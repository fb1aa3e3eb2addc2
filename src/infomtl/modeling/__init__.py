"""The model: backbones, heads, the multi-task model, the information bounds and losses
the objectives are built from, model building and the frozen-backbone feature cache.

Importing this package is cheap; its modules import torch and transformers.
"""
