"""What every layer reads pictures with: finding and decoding photos, sampling video frames,
detecting and cutting faces, hashing files. Below both the network (`amacnn`) and the
pipeline, so that neither imports the other for them."""
