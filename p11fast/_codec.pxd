# p11fast._codec: the hot path's encoders and decoders, all C-level and GIL-free.
#
# Other Cython modules use these with `from p11fast._codec cimport ...`; the functions
# reach them through Cython's C-API capsule (`__pyx_capi__`), so importing the module
# once (with the GIL, at the importer's module init) is all the set-up there is.
# Nothing here touches a Python object or allocates except wbuf (malloc) and hashing
# (OpenSSL).
#
# Deviations from the contract text, all additive or clarifying:
# - `ecdsa_raw_to_der` returns -1 when n is 0 or odd and -2 when cap is too small
#   (the contract named no error values).
# - `json_unescape` is an extra export: json_get_string returns raw escaped content, and
#   a caller that wants the decoded text (an error message, a server that writes "\/"
#   inside base64) needs it. It shares its decoder with json_get_string's key matching.
# - The wbuf field is `inline_` because `inline` is a Cython keyword.
# - b64_decode takes only the canonical encoding: it rejects non-zero unused bits in the
#   last group and padding after a complete group ("QUJD="); no encoder produces either.
# - json_get_string decodes escapes in member names before comparing ("sign\u0061ture"
#   matches), validates the whole document, and returns -2 (not -1) when the document is
#   not a single object or holds the key twice.
# - HASH_MAX_LEN is an extra constant for sizing digest buffers.

cdef enum:
    H_NONE = 0
    H_MD5 = 1
    H_SHA1 = 2
    H_SHA224 = 3
    H_SHA256 = 4
    H_SHA384 = 5
    H_SHA512 = 6

# Longest digest hash_len returns (SHA-512); sizes stack buffers for hash output.
cdef enum:
    HASH_MAX_LEN = 64

# --- base64 (RFC 4648 §4, standard alphabet) ---

# Length of the padded encoding of n bytes, without a NUL.
cdef size_t b64_encoded_len(size_t n) noexcept nogil
# Writes b64_encoded_len(n) bytes to dst (no NUL) and returns that count.
cdef size_t b64_encode(const unsigned char *src, size_t n, char *dst) noexcept nogil
# Decodes src with padding present or absent (nothing else is skipped: no whitespace, no
# line breaks). Returns the decoded length, -1 if src is not base64, -2 if cap is too
# small. The cap check comes before the character scan, so invalid input may report -2.
cdef Py_ssize_t b64_decode(const char *src, size_t n, unsigned char *dst, size_t cap) noexcept nogil

# --- JSON (RFC 8259) ---

# Finds the member `key` (NUL-terminated, matched after unescaping the document's keys)
# of the top-level object. The whole document is validated: it must be one object with
# nothing but whitespace after it. Returns 0 and points *value at the raw (still escaped)
# text between the quotes; -1 if the key is absent or its value is not a string; -2 if
# the document is malformed, has a member value nested deeper than 256 levels, or has
# `key` twice.
cdef int json_get_string(const char *json, size_t n, const char *key,
                         const char **value, size_t *value_len) noexcept nogil
# Writes src as the content of a JSON string (quotes not included): escapes '"', '\\'
# and control characters, passes other bytes through. Returns the length, -1 if cap is
# too small.
cdef Py_ssize_t json_escape(const char *src, size_t n, char *dst, size_t cap) noexcept nogil
# Decodes the raw content of a JSON string (as json_get_string returns it) to UTF-8.
# Returns the length, -1 on a bad escape or unpaired surrogate, -2 if cap is too small.
cdef Py_ssize_t json_unescape(const char *src, size_t n, char *dst, size_t cap) noexcept nogil

# --- ECDSA signature formats ---

# DER SEQUENCE { INTEGER r, INTEGER s } -> r || s, each left-padded to field_len.
# Returns 2 * field_len, or -1 if the DER is not strict (non-minimal lengths or integers,
# negative integers, trailing bytes) or r or s is longer than field_len (out is then
# partly written).
cdef Py_ssize_t ecdsa_der_to_raw(const unsigned char *der, size_t n, size_t field_len,
                                 unsigned char *out) noexcept nogil
# r || s (n even, halves of equal length) -> DER. Returns the DER length, -1 if n is 0 or
# odd, -2 if cap is too small.
cdef Py_ssize_t ecdsa_raw_to_der(const unsigned char *raw, size_t n,
                                 unsigned char *out, size_t cap) noexcept nogil

# --- Hashing (OpenSSL EVP) and PKCS#1 v1.5 DigestInfo ---

# Digest length of h; 0 for H_NONE and unknown values.
cdef size_t hash_len(int h) noexcept nogil
# DER DigestInfo prefix (RFC 8017 §9.2 note 1) for H_MD5..H_SHA512: the prefix followed
# by the digest is the DigestInfo. NULL and *prefix_len = 0 for anything else.
cdef const unsigned char *digestinfo_prefix(int h, size_t *prefix_len) noexcept nogil
# The fetched OpenSSL EVP_MD of h (an `const EVP_MD *`, untyped so this file needs no
# OpenSSL declarations), for callers that give OpenSSL a hash by itself (PSS, OAEP);
# NULL for H_NONE, unknown values and hashes the providers lack.
cdef const void *hash_md(int h) noexcept nogil
# out receives hash_len(h) bytes. 0 ok, -1 unknown h or OpenSSL failure.
cdef int hash_oneshot(int h, const unsigned char *data, size_t n, unsigned char *out) noexcept nogil

# Multi-part hashing state. A zeroed hash_ctx is valid for hash_free; hash_init
# overwrites md_ctx without freeing it, so a live context must be finished or freed first.
cdef struct hash_ctx:
    void *md_ctx    # EVP_MD_CTX *, NULL when no operation is live
    int h

# All return 0 ok, -1 on unknown h, no live context, or OpenSSL failure. A failed
# hash_init leaves nothing live; after a failed hash_update the context still needs
# hash_final or hash_free; hash_final always frees it.
cdef int hash_init(hash_ctx *c, int h) noexcept nogil
cdef int hash_update(hash_ctx *c, const unsigned char *data, size_t n) noexcept nogil
cdef int hash_final(hash_ctx *c, unsigned char *out) noexcept nogil
cdef void hash_free(hash_ctx *c) noexcept nogil

# --- Write buffer for request bodies ---

# Starts in its own inline storage and moves to the heap when that is full. `data` points
# into the struct while inline, so a wbuf must not be copied or moved after wbuf_init.
cdef struct wbuf:
    char *data      # inline_ or a malloc'd block
    size_t len
    size_t cap
    char inline_[512]

cdef void wbuf_init(wbuf *b) noexcept nogil
# 0 ok, -1 out of memory (the buffer is unchanged).
cdef int wbuf_put(wbuf *b, const char *s, size_t n) noexcept nogil
cdef int wbuf_puts(wbuf *b, const char *s) noexcept nogil
# Appends the padded base64 encoding of s.
cdef int wbuf_put_b64(wbuf *b, const unsigned char *s, size_t n) noexcept nogil
# Frees heap storage and leaves b empty and initialised; safe to call repeatedly.
cdef void wbuf_free(wbuf *b) noexcept nogil
