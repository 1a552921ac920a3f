"""The CycleGAN application: training (`python -m train`) and translation
(`python -m train.translate`) on top of `models` and the fused `cyclegan_ext` kernels."""
