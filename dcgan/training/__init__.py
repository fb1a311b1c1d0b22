"""The training loop: its stages, the callbacks that write what it makes, the background
writer, and the execution plan for the hardware."""
