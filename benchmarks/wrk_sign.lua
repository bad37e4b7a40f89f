-- wrk: the request p11fast sends for one CKM_ECDSA signature of a 32-byte digest (the bytes
-- 1..32, as benchmarks/nginx_backend.py's DIGEST), with the operator's HTTP Basic credentials.
wrk.method = "POST"
wrk.body = '{"mode":"ECDSA","message":"AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA="}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Basic b3BlcmF0b3I6YmVuY2hiZW5jaA=="
