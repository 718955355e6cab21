"""``load_network_pkl(f)``: how the StyleGAN hosts read network pickles (a stand-in written for
lipreg): the pickled dict, with ``training_set_kwargs`` and ``augment_pipe`` added as None
when absent, as the hosts' reader documents."""

from __future__ import annotations

import pickle
from typing import IO, Any


def load_network_pkl(f: IO[bytes]) -> dict[str, Any]:
    data: dict[str, Any] = pickle.load(f)
    data.setdefault("training_set_kwargs", None)
    data.setdefault("augment_pipe", None)
    return data
