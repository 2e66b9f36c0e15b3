"""SFF: Semantic Focus Fusion, a dual-stream CNN focus classifier (Ismail & Ghazali 2025).

Modules
-------
model
    :class:`~mfif.sff.model.SFFNet`, the network (PyTorch).
weights
    Loading the shipped, hash-checked weights.
inference
    Dense score maps over whole images, tiled for bounded memory.
fusion
    The paper's four fusion steps as the ``sff`` method.
train
    The training recipe (``mfif train``; ``--arch sff-fast`` for the light network).
fast_model
    :class:`~mfif.sff.fast_model.FastFocusNet`, the light per-frame network of ``sff-fast``
    (PyTorch: training and the ONNX export).
fast_runtime
    Running it: ONNX Runtime on the CPU (no PyTorch import), PyTorch on a GPU; hash checks.
fast_fusion
    The ``sff-fast`` method: SFF's steps on the light network's scores.

Importing :mod:`mfif.sff` itself does not import PyTorch; ``model``, ``weights``, ``inference``,
``fusion``, ``train`` and ``fast_model`` do.

References
----------
.. [1] I. Ismail and K. H. Ghazali, "Deep Learning-Based Semantic Focus Fusion for
   High-Quality Multifocus Image", 2025.
.. [2] Y. Liu, X. Chen, H. Peng and Z. Wang, "Multi-focus image fusion with a deep
   convolutional neural network", Information Fusion 36, 2017.
"""
