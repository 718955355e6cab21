"""The reference trainer of lipreg (``lipreg train``; needs ``pip install 'lipreg[train]'``).

The Banach Wasserstein GAN set-up of Adler & Lunz (2018) and the WGAN-GP toy suite: data
(:mod:`~lipreg.train.data`), networks (:mod:`~lipreg.train.models`), the configuration
(:mod:`~lipreg.train.config`, parsed once into a :mod:`~lipreg.train.plan`), the steps
(:mod:`~lipreg.train.loop`) and the loop around them (:mod:`~lipreg.train.runner`), metrics,
plots, checkpoints (:mod:`~lipreg.train.resume`), the comparison of norms on toy data
(:mod:`~lipreg.train.compare`) and the command line (:mod:`~lipreg.train.cli`).
"""
