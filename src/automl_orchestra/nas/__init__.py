"""AMLA-style neural architecture search: an open JSON model spec (``spec``), a PyTorch stub
(``torch_model``, ``trainer``), instrumentation and constraints, search spaces and generator plug-ins.

The steps that use it are ``nas/generate``, ``nas/train``, ``nas/evaluate`` and the search
driver ``automl/nas`` (``automl_orchestra.engines.nas``). Importing this package does not import torch.
"""
