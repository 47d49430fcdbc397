"""Label pairs in the browser: which pairs to ask (selection), the answers file (answers), the threshold the
answers point to (fit), the page (server, static/) and the labelled groups they make (export).

See docs/label.md.
"""
