# recording: the cold path writes the recorded inventory (layout and contract in recorded.pxd).

from libc.stdlib cimport free
from libc.string cimport memset

cdef void record_find(int slot_index, const search_t *search) except *:
    """After the cold path's search, in a process with a snapshot: the search's record, once per
    process and search. What the record holds is what a process without a cached answer asks
    and builds from the HSM's answers (no certificate fetched, no secret key length known). A
    failure to write only costs a later process time."""
    cdef const unsigned char *value
    cdef size_t value_len
    cdef int by = record_by(search, &value, &value_len)
    shared = _state.shared_presence
    named = (slot_index, by, value[:value_len])
    if shared is None or named in _state.recorded:
        return
    _state.recorded.add(named)

    from p11fast.keyid import is_reserved
    from p11fast.lean import parse_json
    from p11fast.model.objects import build_objects
    from p11fast.snapshot import replace_file

    exchanges = search_exchanges(_state.inventories[slot_index], by, named[2])
    if exchanges is None or len(exchanges) > RECORD_EXCHANGES_MAX:
        return
    objs = []
    seen = set()
    for label_query, key_id, status, answer in exchanges:
        if label_query or status != 200 or key_id in seen or is_reserved(key_id):
            continue
        seen.add(key_id)
        try:
            objs += [(key_id, obj) for obj in build_objects(key_id, parse_json(answer))]
        except ValueError:
            return  # a key the model cannot use: the cold path says why, each time
    if len(objs) > RECORD_OBJECTS_MAX:
        return
    data = record_encode(slot_index, exchanges, objs, shared)
    try:
        replace_file(f"{shared.snapshot_path}{p11f_record_suffix[by].decode()}{slot_index}-"
                     f"{named[2].hex()}", data)
    except OSError:
        pass


cdef list search_exchanges(inventory, int by, bytes value):
    """[(label query?, key ID, status, answer)]: the requests Inventory.find makes for this
    search in a process with nothing cached, answered as the search just was; None when the
    search makes none or its answers are not at hand."""
    from p11fast.keyid import cka_id_to_key_id, is_valid_key_id
    from p11fast.lean import parse_json

    if by == RECORD_BY_ID:
        try:
            key_id = cka_id_to_key_id(value)
        except ValueError:
            return None
        exchange = key_exchange(inventory, key_id)
        return None if exchange is None else [exchange]
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return None
    listing = inventory.label_answer(text)
    if listing is None:
        return None
    status, body = listing
    listed = []
    if status == 200:
        try:
            items = parse_json(body)
        except ValueError:
            return None
        listed = [it["id"] for it in (items if isinstance(items, list) else ())
                  if isinstance(it, dict) and isinstance(it.get("id"), str)
                  and is_valid_key_id(it["id"])]  # fmt: skip
    out = []
    fetched = set()  # the keys a fresh inventory holds at this point of the search
    if is_valid_key_id(text) and not add_key(out, fetched, inventory, text):
        return None
    out.append((True, "", status, bytes(body)))
    for key_id in listed:
        if key_id not in fetched and not add_key(out, fetched, inventory, key_id):
            return None
    return out


cdef bint add_key(list out, set fetched, inventory, str key_id) except -1:
    exchange = key_exchange(inventory, key_id)
    if exchange is None:
        return False
    out.append(exchange)
    if exchange[2] == 200:
        fetched.add(key_id)
    return True


cdef tuple key_exchange(inventory, str key_id):
    """GET /keys/{key_id} as the inventory last had it answered: its normalised answer, or a
    404 when it holds no such key; None when the answer is not a JSON object."""
    cdef char *normal = NULL
    cdef size_t normal_len = 0
    body = inventory.answer(key_id)
    if body is None:
        return (False, key_id, 404, b"")
    if not answer_normalised(body, len(body), &normal, &normal_len):
        return None
    try:
        return (False, key_id, 200, normal[:normal_len])
    finally:
        free(normal)


cdef bytes record_encode(int slot_index, list exchanges, list objs, shared):
    from _struct import pack
    from binascii import crc32

    cdef object_t entry
    out = [p11f_record_magic[:8],
           pack("<III", RECORD_VERSION, shared.snapshot_crc, shared.snapshot_len),
           pack("<I", len(exchanges))]
    for label_query, key_id, status, answer in exchanges:
        out.append(pack("<B", label_query) + _blob(key_id.encode()) + pack("<I", status)
                   + _blob(answer))
    out.append(pack("<I", len(objs)))
    for key_id, obj in objs:
        memset(&entry, 0, sizeof(object_t))
        entry_fill(&entry, slot_index, obj)
        out.append(_blob(key_id.encode()))
        out.append(pack("<QQIQQB", entry.cls, entry.key_type, entry.nethsm_mechs, entry.bits,
                        entry.field_len, entry.private))
        kinds = list(obj.attrs) + [t for t in obj.sensitive if t not in obj.attrs]
        out.append(pack("<I", len(kinds)))
        for kind in kinds:
            # A sensitive attribute's value is never written, whatever attrs holds.
            sensitive = kind in obj.sensitive
            out.append(pack("<QB", kind, sensitive) + _blob(b"" if sensitive else obj.attrs[kind]))
    data = b"".join(out)
    return data + pack("<I", crc32(data))


def _blob(bytes data):
    from _struct import pack

    return pack("<I", len(data)) + data
