"""Stand-in for StudioGAN's ``src/utils`` package (only what lipreg's adapter imports)."""
