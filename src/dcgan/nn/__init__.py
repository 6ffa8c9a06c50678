"""The networks and what acts on their outputs: G and D (`models`), their convolution kernels,
the GAN losses and the moving average of G. No optimisers, devices or data in here."""
