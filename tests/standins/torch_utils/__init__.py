"""Stand-in for the ``torch_utils`` package of NVlabs' StyleGAN2-ADA / StyleGAN3.

Only what a loss module touches: ``training_stats.report``, ``misc.ddp_sync``,
``ops.conv2d_gradfix.no_weight_gradients`` and ``ops.upfirdn2d.filter2d``, with the same
names and signatures. Every module records how it was used so tests can check the protocol.
"""
