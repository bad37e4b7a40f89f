# json: RFC 8259 — finding a string or number member of a response object, and escaping and
# unescaping string content for requests and error messages.
#
# Contract: nogil, no allocation, no Python object, every length checked before a byte is read
# or written (documents come from the network). json_get_string validates the whole document,
# decodes escapes in member names before comparing ("sign\u0061ture" matches "signature"), and
# says -2, not -1, when the document is not a single object or holds the key twice: a reply
# that names a field twice is not one to pick a value from. It returns the raw, still escaped
# value; json_unescape decodes it for a caller that wants the text (an error message, a server
# that writes "\/" inside base64), sharing its decoder with the name matching. The Python-level
# json_nesting_ok (with JSON_MAX_DEPTH) guards the cold path's own JSON parser.
# uses:

# Finds the member `key` (NUL-terminated, matched after unescaping the document's keys)
# of the top-level object. The whole document is validated: it must be one object with
# nothing but whitespace after it. Returns 0 and points *value at the raw (still escaped)
# text between the quotes; -1 if the key is absent or its value is not a string; -2 if
# the document is malformed, has a member value nested deeper than 256 levels, or has
# `key` twice.
cdef int json_get_string(const char *json, size_t n, const char *key,
                         const char **value, size_t *value_len) noexcept nogil
# The same for a member whose value is a number: *value points at its text in the document.
cdef int json_get_number(const char *json, size_t n, const char *key,
                         const char **value, size_t *value_len) noexcept nogil
# Writes src as the content of a JSON string (quotes not included): escapes '"', '\\'
# and control characters, passes other bytes through. Returns the length, -1 if cap is
# too small.
cdef Py_ssize_t json_escape(const char *src, size_t n, char *dst, size_t cap) noexcept nogil
# Decodes the raw content of a JSON string (as json_get_string returns it) to UTF-8.
# Returns the length, -1 on a bad escape or unpaired surrogate, -2 if cap is too small.
cdef Py_ssize_t json_unescape(const char *src, size_t n, char *dst, size_t cap) noexcept nogil
