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
    The training recipe (``mfif train``).

Importing :mod:`mfif.sff` itself does not import PyTorch; its sub-modules do.

References
----------
.. [1] I. Ismail and K. H. Ghazali, "Deep Learning-Based Semantic Focus Fusion for
   High-Quality Multifocus Image", 2025.
.. [2] Y. Liu, X. Chen, H. Peng and Z. Wang, "Multi-focus image fusion with a deep
   convolutional neural network", Information Fusion 36, 2017.
"""
