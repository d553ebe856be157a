"""What one oodml trial does, in plain PyTorch and NumPy (no Ray, no MLflow).

Subpackages: ``data`` (datasets, transforms, samplers), ``splits`` (FID, ooDML split progressions,
split files, few-shot episodes), ``models``, ``methods``, ``evaluate``, and the trial itself.
"""
