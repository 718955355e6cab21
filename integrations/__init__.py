"""Adapters that put lipreg penalties into other GAN codebases, one module per codebase.

Installed as ``lipreg.integrations``; every adapter imports its host codebase lazily, so
``import lipreg`` never requires any of them.
"""
