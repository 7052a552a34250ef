"""Names of the network's interchangeable forms, importable without torch.

``KERNELS``: how DLGSANet runs its dynamic convolution and sparse attention (``set_kernels``):
``triton`` (the fused GPU kernels of ``dlgsa_vs.arch.kernels``), ``torch`` (the plain PyTorch
forms) or ``auto``. The settings validate a choice against it, ``dlgsa_vs.arch.kernels`` resolves
one; both import it from here, a leaf that imports nothing and no torch (the command lines
build their --help from the settings without loading torch).
"""
from __future__ import annotations

KERNELS = ("auto", "triton", "torch")
