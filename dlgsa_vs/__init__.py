"""dlgsa-vs: video super-resolution with DLGSANet for VapourSynth, the shell and TensorRT."""
__version__ = "0.1.0"
