"""The compiled paths map HSM statuses to CKRs exactly as p11fast.errors does."""

from __future__ import annotations

import pytest

from p11fast import _abi, errors

# The compiled contexts (HTTP_SIGN, HTTP_DECRYPT, HTTP_ENCRYPT, HTTP_OTHER in
# p11fast/abi/errors.pxd) and the Python context each stands for.
CONTEXTS = {0: errors.SIGN, 1: errors.DECRYPT, 2: errors.ENCRYPT, 3: errors.OBJECT}
STATUSES = [400, 401, 403, 404, 405, 406, 409, 412, 413, 415, 429, 500, 501, 502, 503, 504]


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("context", list(CONTEXTS))
def test_compiled_mapping_agrees_with_errors(status, context):
    expected = errors.from_http(status, CONTEXTS[context], "", "https://hsm").ckr
    assert _abi.ckr_for_http(status, context) == expected
