"""Training loops (CLIP pretraining, CLIPPINGS SupCon) under Ray Train, and SupCon's batch plans.

A room per job: `pairs.py` (ingestion: archive → Ray Data → workers; pixels as uint8, `pixels.py`),
`module.py` (the two-tower module DDP wraps), `loop.py` (the workers' epoch loop and collectives),
`checkpoints.py`, `fit.py` (the driver: Ray Train, resume, the model folder), `batches.py` (pure numpy +
FAISS), the two objectives, `pretrain.py` and `supcon.py`, and their typed settings, `settings.py`.
"""
