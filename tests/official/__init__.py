"""Upstream code as its authors wrote it, transcribed once for every suite that is judged against
it (plain torch.nn: no cyclegan_ext, no `models`, no `train`).

- official.cyclegan: junyanz/pytorch-CycleGAN-and-pix2pix models/networks.py (ResnetGenerator,
  NLayerDiscriminator with instance norm, reflect padding).
- official.ugatit: znxlwm/UGATIT-pytorch networks.py and UGATIT.py (master): adaILN, ILN, the
  generator, the discriminator, RhoClipper and one training iteration.
"""
