"""Training images: each data set's files read into one uint8 array, the tf.data pipeline
that feeds them, and the augmentations D sees."""
