"""The engine: planning instances, running them in-process, and the driver step with its workers."""
