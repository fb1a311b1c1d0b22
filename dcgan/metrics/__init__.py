"""How good a generator is: feature extractors, scores (FID, KID, precision/recall, copy
rate) in numpy and on the device, and the evaluation of a checkpoint."""
