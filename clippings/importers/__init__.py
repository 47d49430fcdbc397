"""Importers: page scans plus layout output (Newspaper Navigator, American Stories, ALTO, a plain manifest)
turned into an archive in the data contract, one row per clipping with its crop as JPEG bytes.

`boxes` converts every box convention, `pairing` pairs pictures with captions by geometry, `crops` decodes
pages and cuts crops, `records` builds ids and rows, one module per layout parses its documents into page
groups, and `job` runs them on Ray Data with resume and quarantine.
"""

FORMATS = ("navigator", "americanstories", "alto", "manifest")
"""The layouts `clippings import` reads, one module each."""
