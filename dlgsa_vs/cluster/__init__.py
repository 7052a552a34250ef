"""Scale-out of ``dlgsa-upscale`` over a Ray cluster, frame-exact.

``plan`` splits a video at keyframes, ``tasks`` upscales and encodes one chunk (a Ray task),
``manifest`` keeps the work folder's state for resuming, ``join`` stream-copies the encoded
chunks into one output with the input's other streams, ``run`` drives it all and ``cli``
is the command line (``dlgsa-upscale --ray`` and ``dlgsa-upscale-ray``).
"""
