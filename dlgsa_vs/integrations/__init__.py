"""DLGSANet in other projects' frameworks: a vs-jetpack scaler (``vsscale.DLGSA``, on top of the
VapourSynth filter) and a spandrel architecture (``spandrel_arch``)."""
