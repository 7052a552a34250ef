"""Scale-out of ``dlgsa-upscale`` over a Ray cluster, frame-exact: the Ray driver only.

The keyframe chunks, their encode, the manifest and the join are ``dlgsa_vs.segments``
(shared with the one-machine resumable run). Here ``tasks`` holds what runs on the workers
(the chunk task, the progress actor) and ``run`` connects to the cluster and runs every
input's chunks in one queue; the command line is ``dlgsa_vs.cli.ray`` (``dlgsa-upscale
--ray`` and ``dlgsa-upscale-ray``).
"""
