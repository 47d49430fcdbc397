"""One module per CLI subcommand: `HELP`, `add_arguments(parser)`, `run(args) -> int`.

Keep imports of torch, ray, faiss and transformers inside `run` so the parser stays light.
"""
