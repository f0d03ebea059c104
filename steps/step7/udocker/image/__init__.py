"""Images: pull them from a registry (step 7), run them (step 8).

    reference.py  names: busybox -> docker.io/library/busybox:latest
    mirrors.py    which registries to ask: Docker Hub's mirrors first, as dockerd does
    registry.py   the registry HTTP API, token flow included
    manifest.py   manifests, indexes and their media types
    digest.py     sha256 checks while bytes stream
    layers.py     layer tar -> directory, whiteouts, refusing hostile layers
    download.py   layers downloaded side by side while they are unpacked in order
    store.py      the content-addressed store under UDOCKER_ROOT, and running containers' leases
    pull.py       the pull, step by step
    progress.py   what a pull prints
    commands.py   `udocker pull | images | rmi`
    lookup.py     resolve(): a reference -> stored (or pulled) layers + config, for `run`

The modules import nothing heavy at import time: `requests` is loaded by
registry.py on the first request that needs it (a pull of a stored image
needs none), and tarfile and gzip only when there is a layer to unpack.
"""
