"""Pure building blocks: workflow definition, parameters and wiring, graph, codec and hashing.

Kept free of the store, executors and UI so that workers importing it start fast.
"""
