"""The reference trainer of lipreg (``lipreg train``; needs ``pip install 'lipreg[train]'``).

The Banach Wasserstein GAN set-up of Adler & Lunz (2018) and the WGAN-GP toy suite: data
(:mod:`~lipreg.train.data`), networks (:mod:`~lipreg.train.models`), the loop
(:mod:`~lipreg.train.loop`), metrics, plots, checkpoints, the comparison of norms on toy
data (:mod:`~lipreg.train.compare`) and the command line (:mod:`~lipreg.train.cli`).
"""
