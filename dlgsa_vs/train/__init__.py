"""Training and evaluation, used by ``scripts/`` only: paired patches, EMA and resumable state
(``loop``), compressed-video degradations (``degrade``), the benchmark evaluation (``evaluate``)
and its metrics (``metrics``)."""
