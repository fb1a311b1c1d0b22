"""A run on disk: its folder and the names in it, its lock, its metrics file, its
checkpoints, and the listing of runs. TensorFlow only inside the checkpoint reader and writer."""
