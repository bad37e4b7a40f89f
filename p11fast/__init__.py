"""p11fast: a PKCS#11 module for NetHSM-compatible HSMs.

Kept free of imports: the loader imports this package on the way to the first signature.
"""


def module_path() -> str:
    """The absolute path of the PKCS#11 library to hand to applications."""
    import os

    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "libp11fast.so")
