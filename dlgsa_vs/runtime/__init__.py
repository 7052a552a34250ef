"""The runtime: the options (``settings``, the option table), the run plan (``run_plan``: every
decision and its reason), the runner (``backends.open_runner``), the inference core
(``inference``, ``tiling``), weights (``weights``, ``packaged``), the CPU engines, exports and
TensorRT engines (``trt``). Below the front ends and the media pipeline, above the network."""
