"""Images: pull them from a registry (step 7), run them (step 8).

    reference.py  names: busybox -> docker.io/library/busybox:latest
    registry.py   the registry HTTP API, token flow included
    manifest.py   manifests, indexes and their media types
    digest.py     sha256 checks while bytes stream
    layers.py     layer tar -> directory, whiteouts, refusing hostile layers
    store.py      the content-addressed store under UDOCKER_ROOT
    pull.py       the pull, step by step
    progress.py   what a pull prints
    commands.py   `udocker pull | images | rmi`
    lookup.py     resolve(): a reference -> stored (or pulled) layers + config, for `run`

The modules import nothing heavy at import time: `requests` is loaded by
registry.py, which only a pull imports.
"""
