"""The embedded local target: stable and canary served for real by onnxruntime."""
