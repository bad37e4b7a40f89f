# cython: language_level=3
"""The PKCS#11 ABI: every C_* entry point of the v2.40 list and the 3.0 interface.

Layout of this file:
  1. module state (C tables in _abi.pxd, the Python cold-path state in `_state`)
  2. the error template: one way for every entry point to turn an exception into a CKR
  3. general, slot and token functions
  4. sessions and login
  5. objects (find, attributes)
  6. the sign path (nogil from entry to return)
  7. verification (locally, with OpenSSL)
  8. encryption and decryption (AES and RSA decryption on the HSM, nogil), CMAC
  9. digest and random
 10. object management: key generation, create/destroy/set attributes, session objects, PINs
 11. functions that are not supported yet, with their argument checks
 12. the function table and the capsules the loader takes
"""

from cpython.pycapsule cimport PyCapsule_New
from libc.stdint cimport uintptr_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memmove, memset, strcmp, strlen, strncpy

from p11fast._decl.pkcs11 cimport *
from p11fast._codec cimport (
    HASH_MAX_LEN, H_MD5, H_NONE, H_SHA1, H_SHA224, H_SHA256, H_SHA384, H_SHA512,
    b64_decode, digestinfo_prefix, ecdsa_der_to_raw, ecdsa_raw_to_der, hash_final, hash_free,
    hash_init, hash_len, hash_md, hash_oneshot, hash_update, json_get_string, json_unescape,
    wbuf_free, wbuf_init, wbuf_put, wbuf_put_b64, wbuf_puts,
)
from p11fast._decl.openssl cimport *
from p11fast._transport cimport TP_OK, TP_POST, Pool, tp_after_fork_child, tp_buf, tp_buf_free, tp_request, tp_result
from p11fast._transport cimport (
    TP_ERR_CLOSED, TP_ERR_CONNECT, TP_ERR_NOMEM, TP_ERR_TIMEOUT, TP_ERR_TLS, tp_instance_url, tp_pool,
)

import os
import sys

from p11fast._transport import basic_auth, pool_spec

include "_mechanisms.pxi"  # generated from p11fast/mechanisms.py
include "_abi_state.pxi"
include "_abi_general.pxi"
include "_abi_session.pxi"
include "_abi_object.pxi"
include "_abi_sign.pxi"
include "_abi_verify.pxi"
include "_abi_crypt.pxi"
include "_abi_digest.pxi"
include "_abi_manage.pxi"
include "_abi_unsupported.pxi"
include "_abi_table.pxi"
