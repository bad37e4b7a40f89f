# base64: RFC 4648 §4, standard alphabet, both ways.
#
# Contract: nogil, no allocation, no Python object. b64_decode takes only the canonical
# encoding — padding present or absent, nothing skipped (no whitespace, no line breaks) — and
# rejects non-zero unused bits in the last group and padding after a complete group ("QUJD="):
# no encoder produces either, and accepting them would give one signature several encodings.
# uses:

# Length of the padded encoding of n bytes, without a NUL.
cdef size_t b64_encoded_len(size_t n) noexcept nogil
# Writes b64_encoded_len(n) bytes to dst (no NUL) and returns that count.
cdef size_t b64_encode(const unsigned char *src, size_t n, char *dst) noexcept nogil
# Decodes src. Returns the decoded length, -1 if src is not base64, -2 if cap is too small.
# The cap check comes before the character scan, so invalid input may report -2.
cdef Py_ssize_t b64_decode(const char *src, size_t n, unsigned char *dst, size_t cap) noexcept nogil
