# recording: what the cold path writes for light mode's compiled search to find later: a
# record of each search whose template the compiled search takes (the file's layout, and how
# the compiled search uses it, in recorded.pxd).
#
# Contract: the cold path, with the GIL, right after its search (find); once per process and
# search; a failure to write is silent: it only costs a later process the cold path.
# uses: state, objects, recorded

# After the cold path's search for a recordable_template's template.
cdef void record_find(int slot_index, const search_t *search) except *
