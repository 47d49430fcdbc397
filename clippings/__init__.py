"""clippings: link reproduced newspaper clippings across whole archives."""

__version__ = "0.1.0"
