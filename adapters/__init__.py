"""The one I/O layer: every MLflow call, file path, data cache and model file.

``train`` and ``serve`` both build on it and never import each other; :mod:`skbandit` below
it stays pure (frames and arrays in, frames and arrays out).
"""
