"""Reference training set-up of the Banach Wasserstein GAN paper (models for now)."""
