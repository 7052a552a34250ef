"""Keyframe segments of one video, shared by both resumable front ends: the one-machine
run (``resume``, behind ``dlgsa-upscale`` on a whole file) and the Ray driver
(``dlgsa_vs.cluster``).

``plan`` cuts a video at keyframes into chunks from its packets alone, ``encode`` upscales
and encodes one chunk into a checked chunk file, ``manifest`` keeps the work folder's state
for resuming, ``join`` stream-copies the chunk files into one output with the input's other
streams, ``work`` ties them together for one input (plan or resume its manifest, record finished
chunks, join) and ``resume`` runs them in order in one process. It builds on
``dlgsa_vs.video`` (probe, output, pipeline), which never imports it, and knows nothing of
Ray.
"""
