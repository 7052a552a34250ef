"""The vulkan backend: DLGSANet on any Vulkan GPU (AMD, Intel, Apple through MoltenVK, NVIDIA)
through ncnn.

Modules: ``devices`` (which Vulkan devices ncnn sees, and what they compute in), ``convert``
(the network's fixed-size <= 4-D form, ``arch.export_form``, to an ncnn graph with pnnx: the
only module that imports pnnx), ``cache`` (converted graphs on disk, keyed like the TensorRT
engines), ``runner`` (the network callable the backend runs). ``import dlgsa_vs.runtime.vulkan``
imports none of them, nor ncnn.
"""
