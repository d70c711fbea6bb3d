"""The engine: planning instances, running them in-process, and (later) the driver step."""
