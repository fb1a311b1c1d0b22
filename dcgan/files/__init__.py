"""Files, read and written defensively: the layer every other one stands on."""
