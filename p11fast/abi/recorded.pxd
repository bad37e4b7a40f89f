# recorded: the recorded inventory — what a search by CKA_ID found, kept beside light mode's
# snapshot so that a later process finds the same key without Python: the HSM's answer to
# GET /keys/{id} (normalised: its `operations` count, which every signature changes and nothing
# reads, as 0) and the objects the Python model built from that very answer (the fields the
# nogil paths read, every attribute, the sensitive ones without a value). Public data only.
#
# The cold path records (record_find) after a search whose template light mode's compiled
# search takes (recordable_template: a key class and a CKA_ID); the compiled search (compiled)
# loads a record (record_for), sends the request the cold path sends and uses the record only
# when the answer, normalised, is byte-identical: a key changed, created or deleted since is a
# miss, which the cold path answers. So the objects are the cold path's by construction. At
# promotion the cold path takes each record's answer into its inventory (records_adopt) and its
# objects take over their handles.
#
# A record file, <snapshot>.key-<slot>-<CKA_ID in hex>, 0600, replaced whole (little-endian;
# blob = u32 length + bytes):
#
#     RECORD_MAGIC u32 RECORD_VERSION, u32 the snapshot's CRC-32, u32 its length
#     blob key ID, u32 HTTP status (200, or 404: no such key), blob normalised answer
#     u32 n, n x (u64 class, u64 key type, u32 NetHSM mechanism bits, u64 bits, u64 field
#         length, u8 private, u32 m, m x (u64 attribute type, u8 sensitive, blob value))
#     u32 CRC-32 of everything before it
#
# Contract: record_for and the record_t it returns are nogil and owned by this piece until
# records_free (light mode's end, a promotion's end); a forked child drops them unfreed
# (records_drop). The caller of record_for holds light mode's lock (compiled).
# uses: state, objects, codec/json

from p11fast._decl.pkcs11 cimport CK_ATTRIBUTE_PTR, CK_ULONG

cdef enum:
    RECORD_CKA_ID_MAX = 100         # longer IDs get no record (the file name holds it in hex)

cdef struct recorded_attr:
    CK_ULONG type
    bint sensitive
    const unsigned char *value
    CK_ULONG len

cdef struct recorded_object:
    object_t entry                  # slot, class, key ID and what the nogil paths read
    CK_ULONG nattrs
    recorded_attr *attrs

cdef struct record_t:
    record_t *next
    int slot
    unsigned char cka_id[RECORD_CKA_ID_MAX]
    size_t cka_id_len
    char key_id[KEY_ID_MAX + 1]
    long status
    const unsigned char *answer     # normalised
    size_t answer_len
    CK_ULONG nobjects
    recorded_object *objects
    double fetched                  # CLOCK_MONOTONIC seconds of the answer that matched, or 0
    unsigned char *data             # the file, which the pointers above point into

# The template light mode's compiled search takes: CKA_CLASS (a key class) and CKA_ID, once
# each. Sets *cls and the ID; False for any other template.
cdef bint recordable_template(CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount, CK_ULONG *cls,
                              const unsigned char **cka_id, size_t *cka_id_len) noexcept nogil
# The answer without what changes between identical keys' answers, into out (malloc'd, the
# caller frees); False for an answer that is not one JSON object.
cdef bint answer_normalised(const char *body, size_t n, char **out, size_t *out_len) noexcept nogil
cdef record_t *record_for(int slot, const unsigned char *cka_id, size_t cka_id_len) noexcept nogil
cdef bint recorded_matches(const recorded_object *obj, CK_ULONG cls,
                           const unsigned char *cka_id, size_t cka_id_len) noexcept nogil
cdef const recorded_attr *recorded_attribute(const recorded_object *obj,
                                             CK_ULONG kind) noexcept nogil
cdef void records_start(const char *snapshot_path, unsigned long crc,
                        unsigned long length) noexcept nogil
cdef void records_free() noexcept nogil
cdef void records_drop() noexcept nogil
# cka_id: a recordable_template's.
cdef void record_find(int slot_index, bytes cka_id) except *
cdef void records_adopt() except *
