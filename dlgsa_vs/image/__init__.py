"""Image helpers that import nothing else of ours: PNG/JPEG files (``imageio``) and MATLAB's
bicubic ``imresize`` (``imresize``)."""
