"""udocker: a container runtime, built one Linux primitive at a time."""
