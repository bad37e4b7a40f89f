# recorded: the recorded inventory — what a search by CKA_ID or by CKA_LABEL found, kept beside
# light mode's snapshot so that a later process finds the same keys without Python: the requests
# the search makes in a process that has nothing cached, the HSM's answers to them (a key's
# normalised: its `operations` count, which every signature changes and nothing reads, as 0),
# and the objects the Python model built from those very answers (the fields the nogil paths
# read, every attribute, the sensitive ones without a value). Public data only.
#
# The requests are p11fast.model.inventory's: by CKA_ID, GET /keys/{id}; by CKA_LABEL (without
# CKA_ID), GET /keys/{label} when the label is a key ID, GET /keys?label=, then GET /keys/{id}
# of each key listed that is not fetched yet; a search for certificates adds, after each key
# found, its GET /keys/{id}/cert.
#
# The cold path records (recording: record_find) after a search whose template light mode's compiled
# search takes (recordable_template: a key class or CKO_CERTIFICATE, and a CKA_ID or a CKA_LABEL
# or both); the
# compiled search (compiled) loads a record (record_for), sends the requests the cold path
# sends and uses the record only when every answer, normalised, is byte-identical: a key
# changed, created, deleted or relabelled since is a miss, which the cold path answers. So the
# objects are the cold path's by construction. At promotion the cold path takes each record's
# key answers into its inventory (records_adopt) and its objects take over their handles.
#
# A record file, <snapshot><suffix><slot>-<CKA_ID or CKA_LABEL in hex> (p11f_record_suffix),
# 0600, replaced whole (little-endian; blob = u32 length + bytes):
#
#     RECORD_MAGIC u32 RECORD_VERSION, u32 the snapshot's CRC-32, u32 its length
#     u32 e, e x (u8 EXCHANGE_*, blob key ID (empty for the label query), u32 HTTP status, blob
#         answer: a key's normalised, the label query's and a certificate's as sent)
#     u32 n, n x (blob key ID, u64 class, u64 key type, u32 NetHSM mechanism bits, u64 bits,
#         u64 field length, u8 private, u32 m, m x (u64 attribute type, u8 sensitive, blob value))
#     u32 CRC-32 of everything before it
#
# A key's objects differ once its certificate is known (their CKA_SUBJECT). A process whose
# compiled searches would disagree on that — one found a key's certificate, the other fetched
# that key without it (certificates_agree) — asks the cold path instead.
#
# Contract: record_for and the record_t it returns are nogil and owned by this piece until
# records_free (light mode's end, a promotion's end); a forked child drops them unfreed
# (records_drop). The caller of record_for holds light mode's lock (compiled).
# uses: state, objects, codec/json

from p11fast._decl.pkcs11 cimport CK_ATTRIBUTE_PTR, CK_ULONG

cdef extern from *:
    """
    static const char p11f_record_magic[] = "P11FKEYS";
    /* <snapshot><suffix><slot>-<the value in hex>, by a record's RECORD_BY_* */
    static const char *const p11f_record_suffix[] = {".key-", ".label-", ".keycert-",
                                                     ".labelcert-"};
    """
    const char p11f_record_magic[]
    const char *const p11f_record_suffix[]

cdef enum:
    RECORD_VERSION = 2
    RECORD_VALUE_MAX = 100          # longer CKA_IDs and CKA_LABELs get no record (the file name
                                    # holds them in hex)
    RECORD_EXCHANGES_MAX = 18       # requests of one search
    RECORD_OBJECTS_MAX = 16         # objects of the keys one search fetches
    RECORD_BY_ID = 0
    RECORD_BY_LABEL = 1
    RECORD_WITH_CERTS = 2           # or'ed in: a search for certificates
    EXCHANGE_KEY = 0                # GET /keys/{key_id}
    EXCHANGE_LABEL_QUERY = 1        # GET /keys?label=<the record's label>
    EXCHANGE_CERT = 2               # GET /keys/{key_id}/cert
    RECORD_REQUEST_PATH_MAX = 16 + 3 * RECORD_VALUE_MAX  # /keys?label= and the label encoded

cdef struct recorded_attr:
    CK_ULONG type
    bint sensitive
    const unsigned char *value
    CK_ULONG len

cdef struct recorded_object:
    object_t entry                  # slot, class, key ID and what the nogil paths read
    CK_ULONG nattrs
    recorded_attr *attrs

cdef struct recorded_exchange:
    int kind                        # EXCHANGE_*
    char key_id[KEY_ID_MAX + 1]
    long status
    const unsigned char *answer     # a key's normalised; the others' as the HSM sent them
    size_t answer_len

# What a compiled search looks for: its template's class, CKA_ID and CKA_LABEL (NULL when
# absent; one of them is there).
cdef struct search_t:
    CK_ULONG cls
    bint certs                      # cls is CKO_CERTIFICATE
    const unsigned char *cka_id
    size_t cka_id_len
    const unsigned char *label
    size_t label_len

cdef struct record_t:
    record_t *next
    int slot
    int by                          # RECORD_BY_*, RECORD_WITH_CERTS: what names it
    unsigned char value[RECORD_VALUE_MAX]
    size_t value_len
    CK_ULONG nexchanges
    recorded_exchange *exchanges
    CK_ULONG nobjects
    recorded_object *objects
    double fetched                  # CLOCK_MONOTONIC seconds of the answers that matched, or 0
    unsigned char *data             # the file, which the pointers above point into

# The template light mode's compiled search takes: CKA_CLASS (a key class or certificates) and
# CKA_ID or CKA_LABEL or both, once each; False for any other template.
cdef bint recordable_template(CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount,
                              search_t *search) noexcept nogil
# The record that names this search (by its CKA_ID, else by its CKA_LABEL; for certificates).
cdef int record_by(const search_t *search, const unsigned char **value,
                   size_t *value_len) noexcept nogil
# A key's answer without what changes between identical keys' answers, into out (malloc'd, the
# caller frees); False for an answer that is not one JSON object.
cdef bint answer_normalised(const char *body, size_t n, char **out, size_t *out_len) noexcept nogil
# The answer the HSM gives now is the one recorded (normalised as recorded).
cdef bint answer_same(const recorded_exchange *e, long status, const char *body,
                      size_t n) noexcept nogil
# The request path of an exchange of rec, into path; False when it does not fit.
cdef bint exchange_path(const record_t *rec, const recorded_exchange *e, char *path,
                        size_t size) noexcept nogil
cdef record_t *record_for(int slot, int by, const unsigned char *value,
                          size_t value_len) noexcept nogil
cdef bint recorded_matches(const recorded_object *obj, const search_t *search) noexcept nogil
# False when rec and a record matched earlier in this process disagree on a key's certificate.
cdef bint certificates_agree(const record_t *rec) noexcept nogil
cdef const recorded_attr *recorded_attribute(const recorded_object *obj,
                                             CK_ULONG kind) noexcept nogil
cdef void records_start(const char *snapshot_path, unsigned long crc,
                        unsigned long length) noexcept nogil
cdef void records_free() noexcept nogil
cdef void records_drop() noexcept nogil
cdef void records_adopt() except *
