"""Small stand-ins for host codebases that are not on PyPI (written for lipreg's tests).

They follow the hosts' calling protocols (names, signatures, phases, gains), not their code.
"""
