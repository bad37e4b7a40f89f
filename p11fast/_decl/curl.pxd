# libcurl's C API: only what the transport (p11fast/transport/) uses (libcurl >= 7.74, built
# against 7.88).
#
# curl_easy_setopt/getinfo are declared variadic on purpose: Cython then passes each argument
# with its own C type, and libcurl's gcc type-check macros (curl/typecheck-gcc.h) verify every
# option's argument type at compile time, which a typed Cython wrapper would hide.

cdef extern from "curl/curl.h" nogil:
    ctypedef struct CURL:
        pass

    ctypedef int curl_socket_t
    ctypedef long long curl_off_t
    enum: CURL_SOCKET_BAD
    enum: CURL_ERROR_SIZE

    ctypedef enum CURLcode:
        CURLE_OK
        CURLE_AGAIN
        CURLE_UNSUPPORTED_PROTOCOL
        CURLE_URL_MALFORMAT
        CURLE_COULDNT_RESOLVE_PROXY
        CURLE_COULDNT_RESOLVE_HOST
        CURLE_COULDNT_CONNECT
        CURLE_WEIRD_SERVER_REPLY
        CURLE_PARTIAL_FILE
        CURLE_WRITE_ERROR
        CURLE_OUT_OF_MEMORY
        CURLE_OPERATION_TIMEDOUT
        CURLE_ABORTED_BY_CALLBACK
        CURLE_SSL_CONNECT_ERROR
        CURLE_GOT_NOTHING
        CURLE_SSL_ENGINE_NOTFOUND
        CURLE_SSL_ENGINE_SETFAILED
        CURLE_SEND_ERROR
        CURLE_RECV_ERROR
        CURLE_SSL_CERTPROBLEM
        CURLE_SSL_CIPHER
        CURLE_PEER_FAILED_VERIFICATION
        CURLE_SSL_CACERT_BADFILE
        CURLE_SSL_SHUTDOWN_FAILED
        CURLE_SSL_CRL_BADFILE
        CURLE_SSL_ISSUER_ERROR
        CURLE_SSL_PINNEDPUBKEYNOTMATCH
        CURLE_SSL_INVALIDCERTSTATUS
        CURLE_SSL_CLIENTCERT

    ctypedef enum CURLoption:
        CURLOPT_URL
        CURLOPT_ERRORBUFFER
        CURLOPT_WRITEFUNCTION
        CURLOPT_WRITEDATA
        CURLOPT_POST
        CURLOPT_POSTFIELDS
        CURLOPT_POSTFIELDSIZE_LARGE
        CURLOPT_HTTPGET
        CURLOPT_CUSTOMREQUEST
        CURLOPT_HTTPHEADER
        CURLOPT_HTTP_VERSION
        CURLOPT_FOLLOWLOCATION
        CURLOPT_PROXY
        CURLOPT_NOSIGNAL
        CURLOPT_TIMEOUT_MS
        CURLOPT_CONNECTTIMEOUT_MS
        CURLOPT_TCP_NODELAY
        CURLOPT_TCP_KEEPALIVE
        CURLOPT_TCP_KEEPIDLE
        CURLOPT_TCP_KEEPINTVL
        CURLOPT_SOCKOPTFUNCTION
        CURLOPT_SOCKOPTDATA
        CURLOPT_OPENSOCKETFUNCTION
        CURLOPT_OPENSOCKETDATA
        CURLOPT_CLOSESOCKETFUNCTION
        CURLOPT_CLOSESOCKETDATA
        CURLOPT_MAXAGE_CONN
        CURLOPT_MAXCONNECTS
        CURLOPT_FORBID_REUSE
        CURLOPT_PROTOCOLS_STR
        CURLOPT_SSL_VERIFYPEER
        CURLOPT_SSL_VERIFYHOST
        CURLOPT_CAINFO
        CURLOPT_SSL_CTX_FUNCTION
        CURLOPT_SSL_CTX_DATA
        CURLOPT_PRIVATE
        CURLOPT_CONNECT_ONLY
        CURLOPT_NOPROGRESS
        CURLOPT_XFERINFOFUNCTION
        CURLOPT_XFERINFODATA

    enum:
        CURL_HTTP_VERSION_1_1
        CURL_GLOBAL_DEFAULT
        CURL_SOCKOPT_OK
        CURL_SOCKOPT_ERROR

    ctypedef enum CURLINFO:
        CURLINFO_RESPONSE_CODE
        CURLINFO_CONTENT_TYPE
        CURLINFO_PRIVATE
        CURLINFO_ACTIVESOCKET
        CURLINFO_PRETRANSFER_TIME_T

    ctypedef enum curlsocktype:
        CURLSOCKTYPE_IPCXN

    struct curl_sockaddr:
        int family
        int socktype
        int protocol

    struct curl_slist:
        char *data
        curl_slist *next

    CURLcode curl_global_init(long flags)
    const char *curl_easy_strerror(CURLcode code)
    CURL *curl_easy_init()
    CURLcode curl_easy_setopt(CURL *curl, CURLoption option, ...)
    CURLcode curl_easy_getinfo(CURL *curl, CURLINFO info, ...)
    CURLcode curl_easy_perform(CURL *curl)
    CURLcode curl_easy_send(CURL *curl, const void *buffer, size_t buflen, size_t *n)
    CURLcode curl_easy_recv(CURL *curl, void *buffer, size_t buflen, size_t *n)
    void curl_easy_cleanup(CURL *curl)


cdef extern from "curl/multi.h" nogil:
    ctypedef struct CURLM:
        pass

    ctypedef enum CURLMcode:
        CURLM_OK

    ctypedef enum CURLMSG:
        CURLMSG_DONE

    ctypedef union CURLMsg_data:
        void *whatever
        CURLcode result

    ctypedef struct CURLMsg:
        CURLMSG msg
        CURL *easy_handle
        CURLMsg_data data

    CURLM *curl_multi_init()
    CURLMcode curl_multi_add_handle(CURLM *multi, CURL *easy)
    CURLMcode curl_multi_remove_handle(CURLM *multi, CURL *easy)
    CURLMcode curl_multi_perform(CURLM *multi, int *running)
    CURLMcode curl_multi_poll(CURLM *multi, void *extra_fds, unsigned int extra_nfds,
                              int timeout_ms, int *numfds)
    CURLMcode curl_multi_wakeup(CURLM *multi)
    CURLMcode curl_multi_cleanup(CURLM *multi)
    CURLMsg *curl_multi_info_read(CURLM *multi, int *msgs_in_queue)
